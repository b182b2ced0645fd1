"""E-mail about a completion link, sent over SMTP with STARTTLS: a plain and an HTML part from templates per language.

The address is used to send and is never written into any resource: each send is recorded as a Communication that
names the patient and the Task, not the address, the link or the message text.
"""

from __future__ import annotations

import html
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from string import Template
from typing import Any

from service.config import Settings
from service.fhir.dates import instant_text

MESSAGES = Path(__file__).parent / "messages"
DEFAULT_LANGUAGE = "en"
KINDS = ("invitation", "reminder")


class MailNotSent(Exception):
    """The relay could not be reached or refused the message."""


@dataclass(frozen=True, slots=True)
class Letter:
    kind: str  # invitation | reminder
    language: str
    link: str
    expires: datetime
    title: str  # the Questionnaire's title, as published


def languages() -> set[str]:
    return {path.name.split(".")[1] for path in MESSAGES.glob("invitation.*.txt")}


def compose(settings: Settings, letter: Letter, address: str) -> EmailMessage:
    language = letter.language if letter.language in languages() else DEFAULT_LANGUAGE
    values = {"link": letter.link, "expires": letter.expires.strftime("%-d %B %Y"), "title": letter.title}
    plain = Template((MESSAGES / f"{letter.kind}.{language}.txt").read_text()).substitute(values)
    escaped = {key: html.escape(value, quote=True) for key, value in values.items()}
    rich = Template((MESSAGES / f"{letter.kind}.{language}.html").read_text()).substitute(escaped)
    subjects = dict(
        line.split("=", 1) for line in (MESSAGES / f"subjects.{language}.txt").read_text().splitlines() if "=" in line
    )
    message = EmailMessage()
    message["Subject"] = subjects[letter.kind]
    message["From"] = str(settings.smtp_from)
    message["To"] = address
    message["Message-ID"] = make_msgid(domain=str(settings.smtp_from).rpartition("@")[2] or None)
    message["Content-Language"] = language
    message.set_content(plain)
    message.add_alternative(rich, subtype="html")
    return message


def send(settings: Settings, letter: Letter, address: str) -> None:
    """Send one message through the configured relay (STARTTLS unless turned off for a loopback relay)."""
    if not settings.smtp_host:
        raise MailNotSent("no SMTP relay is configured (PROMS_SMTP_HOST)")
    message = compose(settings, letter, address)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds) as relay:
            relay.ehlo()
            if settings.smtp_starttls:
                context = ssl.create_default_context(
                    cafile=str(settings.smtp_ca_file) if settings.smtp_ca_file else None
                )
                relay.starttls(context=context)
                relay.ehlo()
            if settings.smtp_username:
                relay.login(settings.smtp_username, settings.smtp_password or "")
            relay.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailNotSent(f"{type(exc).__name__}: {exc}") from None


def communication(letter: Letter, *, task_id: str, patient: str, sent: datetime | None) -> dict[str, Any]:
    """The record of one send (or of a failed attempt: status stopped): no address, no link, no text."""
    record: dict[str, Any] = {
        "resourceType": "Communication",
        "status": "completed" if sent is not None else "stopped",
        "basedOn": [{"reference": f"Task/{task_id}"}],
        "subject": {"reference": f"Patient/{patient}"},
        "recipient": [{"reference": f"Patient/{patient}"}],
        "medium": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode",
                        "code": "EMAILWRIT",
                        "display": "email",
                    }
                ]
            }
        ],
        "payload": [
            {"contentString": f"Completion link {letter.kind} for {letter.title} (language {letter.language})"}
        ],
    }
    if sent is not None:
        record["sent"] = instant_text(sent)
    else:
        record["statusReason"] = {"text": "the e-mail relay could not be reached or refused the message"}
    return record
