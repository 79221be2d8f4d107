"""E-mail to holders through a real SMTP client (aiosmtplib), and the texts in fi/sv/en.

Only this module and the holder's own mailbox ever see an address together with
a message. Outcomes are recorded per account (``mail_deliveries``) without the
address; log lines name the account id and the outcome, never the address.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from uuid import UUID

import aiosmtplib
import asyncpg

from ..config import OmaKaikuSettings

log = logging.getLogger("omakaiku.mail")

TEXTS: dict[str, dict[str, tuple[str, str]]] = {
    "welcome": {
        "fi": ("Tervetuloa OmaKaikuun",
               "Hei {first_name},\n\nKaikukorttisi OmaKaiku-tili on avattu. Kirjaudu tästä "
               "linkistä (voimassa {link_days} päivää):\n\n{link}\n\n"
               "Myöhemmin voit kirjautua sähköpostiisi lähetettävällä koodilla.\n\n"
               "Terveisin\nKaikukortti"),
        "sv": ("Välkommen till OmaKaiku",
               "Hej {first_name},\n\nDitt OmaKaiku-konto för Kaikukortet har öppnats. "
               "Logga in via länken (giltig i {link_days} dagar):\n\n{link}\n\n"
               "Senare kan du logga in med en kod som skickas till din e-post.\n\n"
               "Hälsningar\nKaikukortet"),
        "en": ("Welcome to OmaKaiku",
               "Hello {first_name},\n\nYour OmaKaiku account for the Kaikukortti culture card "
               "is open. Sign in with this link (valid for {link_days} days):\n\n{link}\n\n"
               "Later you can sign in with a code we send to your e-mail.\n\n"
               "Best wishes\nKaikukortti"),
    },
    "signin_code": {
        "fi": ("OmaKaiku-kirjautumiskoodi",
               "Kirjautumiskoodisi on {code}. Se on voimassa {minutes} minuuttia ja "
               "käy kerran.\n\nJos et pyytänyt koodia, voit jättää viestin huomiotta."),
        "sv": ("Inloggningskod till OmaKaiku",
               "Din inloggningskod är {code}. Den gäller i {minutes} minuter och kan "
               "användas en gång.\n\nOm du inte bad om koden kan du ignorera meddelandet."),
        "en": ("Your OmaKaiku sign-in code",
               "Your sign-in code is {code}. It is valid for {minutes} minutes and works "
               "once.\n\nIf you did not ask for it, you can ignore this message."),
    },
    # Retention: a month before an account whose card ended is erased.
    "retention_notice": {
        "fi": ("OmaKaiku-tilisi poistetaan {erase_on}",
               "Hei {first_name},\n\nKaikukorttisi päättyi {ended_on}: se suljettiin tai sen "
               "voimassaolo päättyi. Siksi OmaKaiku-tilisi "
               "ja kaikki sen tiedot poistetaan {erase_on} alkaen.\n\n"
               "Jos haluat jatkaa, pyydä kortin myöntäjää uusimaan korttisi ennen sitä. "
               "Voit myös kirjautua OmaKaikuun ja ladata tietosi talteen.\n\n"
               "Terveisin\nKaikukortti"),
        "sv": ("Ditt OmaKaiku-konto raderas {erase_on}",
               "Hej {first_name},\n\nDitt Kaikukort upphörde {ended_on}: det stängdes eller "
               "dess giltighet gick ut. Därför raderas "
               "ditt OmaKaiku-konto och alla dess uppgifter från och med {erase_on}.\n\n"
               "Om du vill fortsätta, be den som beviljade kortet att förnya det före dess. "
               "Du kan också logga in i OmaKaiku och ladda ner dina uppgifter.\n\n"
               "Hälsningar\nKaikukortet"),
        "en": ("Your OmaKaiku account will be erased on {erase_on}",
               "Hello {first_name},\n\nYour Kaikukortti culture card ended on {ended_on}: it "
               "was closed or it expired. Your OmaKaiku account and all "
               "its data will therefore be erased on or after {erase_on}.\n\n"
               "To keep it, ask the distributor who gave you the card to renew it before "
               "then. You can also sign in to OmaKaiku and download your data.\n\n"
               "Best wishes\nKaikukortti"),
    },
    "notification": {
        "fi": ("Kaikukortti: {title}", "{body}\n\nLue lisää OmaKaikusta: {link}"),
        "sv": ("Kaikukortet: {title}", "{body}\n\nLäs mer i OmaKaiku: {link}"),
        "en": ("Kaikukortti: {title}", "{body}\n\nRead more in OmaKaiku: {link}"),
    },
}


def render(kind: str, language: str, **values: object) -> tuple[str, str]:
    texts = TEXTS[kind]
    subject, body = texts.get(language, texts["fi"])
    return subject.format(**values), body.format(**values)


@dataclass
class Mailer:
    settings: OmaKaikuSettings

    @property
    def configured(self) -> bool:
        return bool(self.settings.smtp_host)

    async def send(self, to: str, subject: str, body: str, *, language: str) -> tuple[str, str | None]:
        """``(outcome, detail)``: sent, failed (with the error's type) or not_configured."""
        if not self.configured:
            return "not_configured", "KAIKU_OMAKAIKU_SMTP_HOST is not set"
        message = EmailMessage()
        message["From"] = self.settings.smtp_from
        message["To"] = to
        message["Subject"] = subject
        message["Content-Language"] = language
        message["Message-ID"] = make_msgid(domain="omakaiku.kaikukortti.invalid")
        message.set_content(body)
        try:
            await aiosmtplib.send(
                message, hostname=self.settings.smtp_host, port=self.settings.smtp_port,
                username=self.settings.smtp_username, password=self.settings.smtp_password,
                start_tls=self.settings.smtp_starttls, timeout=self.settings.smtp_timeout_seconds)
        except (aiosmtplib.SMTPException, OSError) as error:
            # The error text may quote the address back: keep only its type.
            return "failed", type(error).__name__
        return "sent", None


async def record_mail(pool: asyncpg.Pool, account_id: UUID, kind: str,
                      outcome: tuple[str, str | None]) -> None:
    """The outcome of one e-mail, by account — never the address."""
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO mail_deliveries (account_id, kind, outcome, detail) "
            "VALUES ($1, $2, $3, $4)", account_id, kind, *outcome)
    log.info("e-mail", extra={"account_id": str(account_id), "kind": kind,
                              "outcome": outcome[0]})
