"""Japanese and English: the page's words, dates, and the operator's names for IDs.

Two languages and a few dozen phrases: a table is clearer than a gettext
catalogue (no compiled .mo files, every phrase in both languages side by side,
and a test checks that none is missing in either). The language comes from
``?lang=`` or else the browser's Accept-Language; Japanese is the default.

Agency IDs, office works and info items are shown in words from an optional
labels file (``[portal] labels``, TOML)::

    [agencies.city-chiyoda]
    ja = "千代田区"
    en = "Chiyoda City"
    [office_work.survivor-pension]
    ja = "遺族年金の支給"
    en = "Survivor pension"

An ID without a label is shown as the ID itself.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from ..errors import ConfigError

LANGS = ("ja", "en")
JST = timezone(timedelta(hours=9), "JST")
LABEL_SECTIONS = ("agencies", "office_work", "info_item")

TEXT: dict[str, tuple[str, str]] = {  # key: (ja, en)
    "title": ("あなたの情報の提供記録", "Who looked up your information"),
    "login_note": ("このページは署名付きの期限つきリンクで開いています。これは実際のログイン"
                   "（国のログイン）の代わりの参考実装です。",
                   "You opened this page with a signed, expiring link. It stands in for the "
                   "real login (the national login) in this reference portal."),
    "lang_switch": ("English", "日本語"),
    "summary": ("概要", "Summary"),
    "deferred": ("提供を延期している記録", "Records withheld for now"),
    "deferred_none": ("延期中の記録はありません。", "No record is withheld."),
    "deferred_some": ("{n} 件の記録は、法令に基づき後日お知らせします。最も早い公開日：{when}",
                      "{n} record(s) are withheld under the law and will be shown later. "
                      "The earliest is shown on {when}."),
    "holdings": ("あなたと結び付いている機関", "Agencies linked to you"),
    "holdings_none": ("結び付いている機関はありません。", "No agency is linked to you."),
    "agency": ("機関", "Agency"),
    "since": ("結び付けた日時", "Linked since"),
    "status": ("状態", "Status"),
    "linked": ("結び付いています", "Linked"),
    "released": ("解除済み（{when}）", "Released ({when})"),
    "records": ("提供記録（新しい順）", "Access records (newest first)"),
    "records_none": ("記録はまだありません。", "There is no record yet."),
    "when": ("日時", "When"),
    "what": ("内容", "What happened"),
    "asked": ("照会した機関", "Asked by"),
    "provided": ("提供した機関", "Provided by"),
    "office_work": ("事務", "Office work"),
    "info_item": ("情報", "Information"),
    "purpose": ("目的", "Purpose"),
    "basis": ("根拠", "Legal basis"),
    "deferred_until": ("公開を延期", "Withheld until"),
    "proof": ("証明", "Proof"),
    "kind_translate": ("情報の照会・提供", "Information requested and provided"),
    "kind_resolve": ("提供先の確認", "Providers looked up"),
    "kind_issue": ("機関との結び付け", "An agency linked you"),
    "kind_release": ("結び付けの解除", "An agency released its link"),
    "kind_policy": ("許可表の公開", "Permission table published"),
    "kind_unknown": ("その他", "Other"),
    "outcome_provider_not_holding": (
        "提供先があなたの情報を持っていなかったため、提供されませんでした",
        "Nothing was provided: the agency asked holds no link to you"),
    "not_deferred": ("—", "—"),
    "verify": ("検証する", "Verify"),
    "verify_note": ("「検証する」はこのブラウザの中で、記録が改ざん防止ログに含まれていることを"
                    "確かめます（ポータルを信用する必要はありません）。JavaScript が必要です。",
                    "“Verify” checks, inside this browser, that the record is in the "
                    "tamper-evident log, so you need not trust this portal. It needs JavaScript."),
    "vkey": ("ログの検証鍵", "The log's verifier key"),
    "unavailable": ("この情報は現在のサーバーからは取得できません。",
                    "This server does not provide this information yet."),
    "older": ("さらに古い記録", "Older records"),
    "newest": ("最新の記録に戻る", "Back to the newest records"),
    "live": ("新しい記録は自動的に表示されます。", "New records appear here as they happen."),
    "new_record": ("新しい記録", "New record"),
    "refused_title": ("このリンクは使えません", "This link cannot be used"),
    "refused_body": ("リンクが正しくないか、期限が切れています。もう一度ログインしてください。",
                     "The link is not valid or has expired. Please sign in again."),
    "not_found": ("見つかりません", "Not found"),
    "unknown_person": ("このリンクの方の記録は見つかりません。",
                       "No records are known for the person this link names."),
    "unavailable_title": ("ただいま利用できません", "Temporarily unavailable"),
    "try_later": ("サーバーに接続できません。しばらくしてからもう一度お試しください。",
                  "The server cannot be reached. Please try again later."),
    # the verifier's messages (static/portal.js reads them from the page)
    "v_running": ("検証中…", "Verifying…"),
    "v_ok": ("検証できました：この記録はログの {size} 件中 {index} 番目に含まれ、"
             "署名は検証鍵と一致します。",
             "Verified: this record is entry {index} of the {size} in the log, and the "
             "signature matches the verifier key."),
    "v_fail": ("検証できませんでした：{why}", "Verification FAILED: {why}"),
    "v_pending": ("まだログに取り込まれていません。少し待ってからもう一度お試しください。",
                  "Not in the log yet. Please try again in a moment."),
    "v_witnessed": ("{m} 者の立会人のうち {n} 者がこのチェックポイントに連署しています。",
                    "{n} of the {m} witnesses cosigned this checkpoint."),
    "witnesses": ("立会人の検証鍵（{k} 者以上の連署を確認します）",
                  "The witnesses' keys (at least {k} must cosign)"),
    "v_unsupported": ("このブラウザは Ed25519 署名の検証に対応していません。",
                      "This browser cannot check Ed25519 signatures."),
}


def t(lang: str, key: str, **values: object) -> str:
    text = TEXT[key][0 if lang == "ja" else 1]
    return text.format(**values) if values else text


def negotiate(query_lang: str | None, accept_language: str) -> str:
    if query_lang in LANGS:
        return query_lang
    for part in accept_language.split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("en"):
            return "en"
        if tag.startswith("ja"):
            return "ja"
    return "ja"


def format_time(lang: str, time_us: int | None) -> str:
    """A time in Japan's time zone (the person's), minutes precision."""
    if time_us is None:
        return ""
    dt = datetime.fromtimestamp(time_us / 1e6, UTC).astimezone(JST)
    if lang == "ja":
        return f"{dt.year}年{dt.month}月{dt.day}日 {dt:%H:%M} (JST)"
    return f"{dt:%d %b %Y, %H:%M} JST"


def iso_time(time_us: int | None) -> str:
    if time_us is None:
        return ""
    return datetime.fromtimestamp(time_us / 1e6, UTC).isoformat().replace("+00:00", "Z")


class Labels:
    """The operator's words for agency IDs, office works and info items."""

    def __init__(self, table: dict[str, dict[str, dict[str, str]]] | None = None) -> None:
        self._table = table or {}

    @classmethod
    def load(cls, path: Path | None) -> Labels:
        if path is None:
            return cls()
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the portal's labels: {exc}") from None
        for section, entries in doc.items():
            if section not in LABEL_SECTIONS or not isinstance(entries, dict):
                raise ConfigError(f"{path}: unknown section [{section}]: expected one of "
                                  f"{', '.join(LABEL_SECTIONS)}")
            for ident, names in entries.items():
                if (not isinstance(names, dict) or not set(names) <= set(LANGS)
                        or not all(isinstance(v, str) for v in names.values())):
                    raise ConfigError(f"{path}: [{section}.{ident}]: expected ja and en strings")
        return cls(doc)

    def name(self, lang: str, section: str, ident: str) -> str:
        names = self._table.get(section, {}).get(ident, {})
        return names.get(lang) or names.get("en") or ident
