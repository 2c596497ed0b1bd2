"""User-facing strings of the bot, in Japanese and English."""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    # nudges
    "account": {"ja": "アカウント", "en": "Account"},
    "owner": {"ja": "担当", "en": "Owner"},
    "segment": {"ja": "ポートフォリオ", "en": "Portfolio"},
    "health": {"ja": "ヘルス", "en": "Health"},
    "health_unknown": {"ja": "算出不可(データ不足)", "en": "unknown (not enough data)"},
    "pulled_down": {"ja": "押し下げ要因", "en": "Pulled down by"},
    "why": {"ja": "理由", "en": "Why"},
    "evidence": {"ja": "根拠", "en": "Evidence"},
    "due": {"ja": "期限", "en": "Due"},
    "renewal": {"ja": "更新日", "en": "Renewal"},
    "last_touch": {"ja": "最終接触", "en": "Last touch"},
    "task_created": {"ja": "CRMタスク作成済み", "en": "CRM task created"},
    "btn_create_task": {"ja": "CRMタスクを作成", "en": "Create CRM task"},
    "btn_draft": {"ja": "メール下書き", "en": "Draft email"},
    "btn_snooze": {"ja": "スヌーズ", "en": "Snooze"},
    "btn_done": {"ja": "完了", "en": "Done"},
    "btn_not_useful": {"ja": "役に立たない", "en": "Not useful"},
    "btn_open": {"ja": "開く", "en": "Open"},
    "btn_show": {"ja": "表示", "en": "Show"},
    "snooze_1d": {"ja": "1日", "en": "1 day"},
    "snooze_1w": {"ja": "1週間", "en": "1 week"},
    "snooze_date": {"ja": "日付を指定…", "en": "Until a date…"},
    "severity_high": {"ja": "重要度: 高", "en": "Priority: high"},
    "severity_medium": {"ja": "重要度: 中", "en": "Priority: medium"},
    "severity_low": {"ja": "重要度: 低", "en": "Priority: low"},
    "high_touch": {"ja": "ハイタッチ", "en": "high-touch"},
    "low_touch": {"ja": "ロータッチ", "en": "low-touch"},
    "tech_touch": {"ja": "テックタッチ", "en": "tech-touch"},
    "active": {"ja": "アクティブ", "en": "active"},
    "passive": {"ja": "パッシブ", "en": "passive"},
    "dormant": {"ja": "休眠", "en": "dormant"},
    "green": {"ja": "良好", "en": "green"},
    "yellow": {"ja": "注意", "en": "yellow"},
    "red": {"ja": "危険", "en": "red"},
    "unknown": {"ja": "不明", "en": "unknown"},
    "cadence": {"ja": "接触目安 {days}日", "en": "cadence {days} days"},
    "potential_band": {"ja": "ポテンシャル {band}", "en": "{band} potential"},
    # who did what (shown on the message after a click)
    "note_done": {"ja": ":white_check_mark: {actor} が完了にしました({day})",
                  "en": ":white_check_mark: Marked done by {actor} ({day})"},
    "note_not_useful": {"ja": ":no_entry_sign: {actor} が「役に立たない」と評価しました({day})。"
                              "プレイブックの改善に使います",
                        "en": ":no_entry_sign: Marked not useful by {actor} ({day}); "
                              "this feedback tunes the playbook"},
    "note_snoozed": {"ja": ":zzz: {actor} が {until} までスヌーズしました",
                     "en": ":zzz: Snoozed by {actor} until {until}"},
    "note_task": {"ja": ":memo: {actor} がCRMタスク {task_id} を作成しました",
                  "en": ":memo: CRM task {task_id} created by {actor}"},
    "note_email": {"ja": ":email: {actor} がメール送信をCRMに記録しました",
                   "en": ":email: Email logged as sent in the CRM by {actor}"},
    "note_closed": {"ja": ":ballot_box_with_check: 条件が解消したためクローズしました",
                    "en": ":ballot_box_with_check: Closed: the condition cleared by itself"},
    "someone": {"ja": "誰か", "en": "someone"},
    # second clicks
    "again_done": {"ja": "このプレイは既に {actor} が完了にしています。変更はありません。",
                   "en": "Already marked done by {actor}. Nothing changed."},
    "again_not_useful": {"ja": "このプレイは既に {actor} が「役に立たない」と評価しています。"
                               "変更はありません。",
                         "en": "Already marked not useful by {actor}. Nothing changed."},
    "again_snoozed": {"ja": "既に {until} までスヌーズされています。変更はありません。",
                      "en": "Already snoozed until {until}. Nothing changed."},
    "again_task": {"ja": "CRMタスク {task_id} は作成済みです。変更はありません。",
                   "en": "CRM task {task_id} already exists. Nothing changed."},
    "again_ended": {"ja": "このプレイは既に終了しています({state})。変更はありません。",
                    "en": "This play has already ended ({state}). Nothing changed."},
    "state_done": {"ja": "完了", "en": "done"},
    "state_dismissed": {"ja": "役に立たない", "en": "not useful"},
    "state_closed": {"ja": "自動クローズ", "en": "closed"},
    "state_snoozed": {"ja": "スヌーズ中", "en": "snoozed"},
    "state_open": {"ja": "対応待ち", "en": "open"},
    # modals
    "modal_email": {"ja": "メール下書き", "en": "Draft email"},
    "modal_snooze": {"ja": "スヌーズ", "en": "Snooze"},
    "log_sent": {"ja": "送信済みとして記録", "en": "Log as sent"},
    "cancel": {"ja": "閉じる", "en": "Close"},
    "to": {"ja": "宛先", "en": "To"},
    "subject": {"ja": "件名", "en": "Subject"},
    "body": {"ja": "本文", "en": "Body"},
    "open_mail": {"ja": "メールアプリで開く", "en": "Open in mail app"},
    "email_hint": {"ja": "編集してからメールアプリで送信し、「送信済みとして記録」を押すと"
                         "CRMに活動として残ります。",
                   "en": "Edit, send it from your mail app, then press *Log as sent* to record "
                         "the activity in the CRM."},
    "mailto_cut": {"ja": "本文が長いためメールアプリには件名だけを渡します。"
                         "本文はコピーしてください。",
                   "en": "The body is too long for a mail link: only the subject is passed; "
                         "copy the body."},
    "no_recipient": {"ja": "(連絡先未登録)", "en": "(no contact on record)"},
    "snooze_until": {"ja": "この日まで非表示にする", "en": "Hide until"},
    "snooze_past": {"ja": "明日以降の日付を選んでください", "en": "Pick a day after today"},
    "email_logged": {"ja": "メール送信をCRMに記録しました(タスク {task_id})。",
                     "en": "Logged the email as sent in the CRM (task {task_id})."},
    # /account and /kizuna
    "no_match": {"ja": "「{query}」に一致するアカウントはありません。"
                       "社名の一部(ひらがな・カタカナ、大文字小文字、全角半角は区別しません)"
                       "かCRMのIDで試してください。",
                 "en": "No account matches “{query}”. Try part of the company name (case, "
                       "full-width letters and hiragana/katakana don't matter) or its CRM id."},
    "account_usage": {"ja": "`/account 社名の一部` でアカウントカードを表示します。",
                      "en": "Use `/account part-of-a-name` to see an account card."},
    "several": {"ja": "「{query}」に一致するアカウントが {n} 件あります:",
                "en": "{n} accounts match “{query}”:"},
    "arr": {"ja": "ARR", "en": "ARR"},
    "usage_30d": {"ja": "利用量(30日)", "en": "Usage (30 days)"},
    "no_data": {"ja": "データなし", "en": "no data"},
    "none_on_record": {"ja": "記録なし", "en": "none on record"},
    "open_plays": {"ja": "対応待ちのプレイ", "en": "Open plays"},
    "no_open_plays": {"ja": "対応待ちのプレイはありません", "en": "No open plays"},
    "recent_activity": {"ja": "最近の活動", "en": "Recent activity"},
    "kind_email": {"ja": "メール", "en": "email"},
    "kind_call": {"ja": "電話", "en": "call"},
    "kind_meeting": {"ja": "打ち合わせ", "en": "meeting"},
    "kind_qbr": {"ja": "QBR", "en": "QBR"},
    "kind_note": {"ja": "メモ", "en": "note"},
    "kind_task": {"ja": "タスク", "en": "task"},
    "more": {"ja": "…ほか {n} 件", "en": "…and {n} more"},
    "help": {"ja": "*Kizuna の使い方*\n"
                   "• `/account 社名` — アカウントカード(ヘルスと理由、ポートフォリオ、最近の活動、"
                   "対応待ちのプレイ)\n"
                   "• `/kizuna due` — 自分の対応待ちのプレイ(期限順)\n"
                   "• `/kizuna snoozed` — スヌーズ中のプレイ\n"
                   "• `/kizuna help` — このヘルプ\n"
                   "通知のボタン: CRMタスク作成・メール下書き・スヌーズ・完了・役に立たない。"
                   "ホームタブに担当アカウントの状況が表示されます。",
             "en": "*Using Kizuna*\n"
                   "• `/account name` — the account card (health and why, portfolio cell, recent "
                   "activity, open plays)\n"
                   "• `/kizuna due` — your open plays, by due date\n"
                   "• `/kizuna snoozed` — your snoozed plays\n"
                   "• `/kizuna help` — this help\n"
                   "Buttons on nudges: create CRM task, draft email, snooze, done, not useful. "
                   "The Home tab shows your book of business."},
    "unknown_command": {"ja": "「{text}」は分かりません。", "en": "I don't know “{text}”."},
    "due_title": {"ja": "対応待ちのプレイ({n} 件)", "en": "Your open plays ({n})"},
    "due_none": {"ja": "対応待ちのプレイはありません。", "en": "You have no open plays."},
    "snoozed_title": {"ja": "スヌーズ中のプレイ({n} 件)", "en": "Your snoozed plays ({n})"},
    "snoozed_none": {"ja": "スヌーズ中のプレイはありません。", "en": "You have no snoozed plays."},
    "overdue": {"ja": "期限切れ", "en": "overdue"},
    "until": {"ja": "{day} まで", "en": "until {day}"},
    "who_are_you": {"ja": "あなたのSlackアカウントに対応するCRM担当者が見つかりません"
                          "(メールアドレスが一致しないか、kizuna.yaml の slack.users で設定)。",
                    "en": "I can't tell which CRM owner you are (your Slack email doesn't match "
                          "one; an admin can map you in kizuna.yaml slack.users)."},
    "owns_nothing": {"ja": "CRMで {email} が担当するアカウントはありません。別のメールアドレスで"
                           "登録されている場合は kizuna.yaml の slack.users で対応付けてください。",
                     "en": "No CRM account is owned by {email}. If the CRM knows you by another "
                           "email, an admin can map you in kizuna.yaml slack.users."},
    # errors
    "error_known": {"ja": ":warning: {message}", "en": ":warning: {message}"},
    "error_unexpected": {"ja": ":warning: 予期しないエラーが発生しました。"
                               "管理者に参照番号 `{ref}` をお伝えください。",
                         "en": ":warning: Something went wrong. Please give your admin the "
                               "reference `{ref}`."},
    "not_found": {"ja": "対象が見つかりません({message})。", "en": "Not found ({message})."},
    # digests
    "daily_title": {"ja": "今日のまとめ({day})", "en": "Your digest for {day}"},
    "daily_intro": {"ja": "個別通知に含めなかった {n} 件のプレイです。",
                    "en": "{n} plays that did not get a message of their own today."},
    "daily_footer": {"ja": "対応待ち {open} 件(うち期限切れ {overdue} 件)。`/kizuna due` で一覧。",
                     "en": "{open} open plays ({overdue} overdue). `/kizuna due` lists them."},
    "weekly_title": {"ja": "週次サマリー({day})", "en": "Weekly CS summary ({day})"},
    "weekly_team": {"ja": "*チーム全体*: アカウント {accounts} · 接触目安超過 {behind} · "
                          "対応待ち {open}(期限切れ {overdue})",
                    "en": "*Whole team*: {accounts} accounts · {behind} behind cadence · "
                          "{open} open plays ({overdue} overdue)"},
    "weekly_csm": {"ja": "*{name}* — アカウント {accounts} · 接触目安超過 {behind} · "
                         "対応待ち {open}(期限切れ {overdue})",
                   "en": "*{name}* — {accounts} accounts · {behind} behind cadence · "
                         "{open} open plays ({overdue} overdue)"},
    "at_risk": {"ja": "リスクARR(ヘルス注意・危険、更新四半期別)",
                "en": "At-risk ARR (yellow/red health, by renewal quarter)"},
    "at_risk_none": {"ja": "リスクARRなし", "en": "no at-risk ARR"},
    "no_renewal": {"ja": "更新日なし", "en": "no renewal date"},
    # App Home
    "home_title": {"ja": "{name} さんの担当アカウント", "en": "{name}'s book of business"},
    "home_counts": {"ja": "アカウント {accounts} · 良好 {green} · 注意 {yellow} · 危険 {red} · "
                          "不明 {unknown}",
                    "en": "{accounts} accounts · {green} green · {yellow} yellow · {red} red · "
                          "{unknown} unknown"},
    "home_portfolio": {"ja": "ポートフォリオ", "en": "Portfolio"},
    "home_attention": {"ja": "今日対応が必要なアカウント", "en": "Needs attention today"},
    "home_attention_none": {"ja": "今日対応が必要なアカウントはありません。",
                            "en": "Nothing needs your attention today."},
    "home_plays": {"ja": "対応待ちのプレイ(期限順)", "en": "Open plays by due date"},
    "home_drops": {"ja": "最近ヘルスが下がったアカウント", "en": "Recent health drops"},
    "home_drops_none": {"ja": "直近14日間で大きな低下はありません。",
                        "en": "No notable drops in the last 14 days."},
    "home_drop": {"ja": "{name}: {before:.0f} → {now:.0f}({delta:+.0f})",
                  "en": "{name}: {before:.0f} → {now:.0f} ({delta:+.0f})"},
    "home_unknown_user": {"ja": "あなたに対応するCRM担当者が見つかりませんでした。",
                          "en": "I couldn't match you to a CRM owner."},
    "home_updated": {"ja": "{at} 更新 · `/kizuna help`", "en": "Updated {at} · `/kizuna help`"},
    # admin channel
    "admin_unmapped": {"ja": ":bust_in_silhouette: CRMの担当者 {email} に対応するSlackユーザーが"
                             "いません。通知は {channel} に送ります。kizuna.yaml の slack.users "
                             "で設定できます。",
                       "en": ":bust_in_silhouette: No Slack user has the CRM owner's email "
                             "{email}; their nudges go to {channel}. Map them in kizuna.yaml "
                             "slack.users."},
    "admin_unmapped_nowhere": {"ja": ":warning: CRMの担当者 {email} に対応するSlackユーザーがなく、"
                                     "slack.fallback_channel も未設定のため通知が保留中です。",
                               "en": ":warning: No Slack user has the CRM owner's email {email} "
                                     "and slack.fallback_channel is not set: their nudges wait."},
    "admin_rejected": {"ja": ":warning: Slackがメッセージを拒否しました({error}, {target})。{what}",
                       "en": ":warning: Slack rejected a message ({error}, {target}). {what}"},
    "admin_fallback_sent": {"ja": "簡易版を送りました。", "en": "A plain version was sent."},
    "admin_will_retry": {"ja": "プレイは保留のまま次回再送します。",
                         "en": "The play stays pending and is retried next time."},
}


def tr(key: str, language: str, **values: object) -> str:
    """The string ``key`` in ``language`` (Japanese unless English is asked for)."""
    entry = STRINGS[key]
    text = entry.get(language) or entry["ja"]
    return text.format(**values) if values else text
