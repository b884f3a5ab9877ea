"""Generated complaint mail for the ingest benchmark, and a fast Maildir loader.

The mix (fractions of N): new complaints in Dutch (40 %) and French (12 %), HTML-only
complaints (10 %), complaints with a PDF attachment (8 %), citizens' follow-ups replying
to their earlier mail with In-Reply-To/References (10 %), agency mail forwarded inline
(7 %), near-duplicates of an earlier complaint (resent with small edits, 6 %),
auto-replies/out-of-office (4 %), bounces (3 %). Deterministic for a seed; streamed, so
N=100,000 needs no memory.
"""

from __future__ import annotations

import base64
import os
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

MIX = [("nl", 40), ("fr", 12), ("html", 10), ("pdf", 8), ("followup", 10), ("forward", 7),
       ("near_duplicate", 6), ("auto_reply", 4), ("bounce", 3)]
FIRST = ["Jan", "An", "Pieter", "Sofie", "Luc", "Marie", "Koen", "Els", "Ahmed", "Fatima", "Tom", "Lotte",
         "Jean", "Claire", "Didier", "Nathalie", "Bram", "Nora", "Wim", "Ines"]
LAST = ["Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes", "Goossens", "Wouters",
        "De Smet", "Dubois", "Lambert", "Dupont", "Martin", "El Amrani", "Vermeulen", "Hermans", "Aerts"]
AGENCIES = [("Departement Onderwijs en Vorming", "studietoelagen@ond.vlaanderen.be", "mijn studietoelage"),
            ("De Lijn", "klantendienst@delijn.be", "een boete op de bus"),
            ("Vlaams Energie- en Klimaatagentschap", "info@veka.be", "mijn renovatiepremie"),
            ("Wonen in Vlaanderen", "wonen@vlaanderen.be", "mijn huurpremie"),
            ("Agentschap Opgroeien", "info@opgroeien.be", "het groeipakket"),
            ("Vlaamse Belastingdienst", "vlabel@vlaanderen.be", "mijn aanslag onroerende voorheffing")]
NL = ("Geachte,\n\nIk heb op {d} maart een aanvraag ingediend bij {agency} over {topic}, maar na "
      "{w} weken heb ik nog steeds geen beslissing gekregen. Ik heb hen al {n} keer gemaild en gebeld "
      "zonder antwoord. Mijn dossiernummer bij hen is {ref}.\n\nKunnen jullie mij helpen?\n\n"
      "Met vriendelijke groeten,\n{name}\n{street} {no}, {zip} {city}\n")
FR = ("Madame, Monsieur,\n\nJ'ai introduit le {d} mars une demande auprès de {agency} concernant "
      "{topic}, mais après {w} semaines je n'ai toujours reçu aucune décision. Je les ai contactés "
      "{n} fois sans réponse. Mon numéro de dossier est {ref}.\n\nPouvez-vous m'aider ?\n\n"
      "Cordialement,\n{name}\n")
CITIES = [("Gent", 9000), ("Antwerpen", 2000), ("Leuven", 3000), ("Brugge", 8000), ("Hasselt", 3500)]
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n" + b"% scanned letter\n" * 300 + b"%%EOF\n"


def _pick_kind(rng: random.Random) -> str:
    roll = rng.randrange(100)
    for kind, share in MIX:
        if roll < share:
            return kind
        roll -= share
    return "nl"


def _headers(sender: str, name: str, subject: str, mid: str, *, extra: str = "") -> str:
    return (f"From: {name} <{sender}>\r\nTo: klachten@vlaamseombudsdienst.be\r\nSubject: {subject}\r\n"
            f"Date: Mon, 23 Nov 2026 10:{mid[-2:]}:00 +0100\r\nMessage-ID: <{mid}@mail.example.be>\r\n"
            f"{extra}MIME-Version: 1.0\r\n")


def _plain(body: str) -> str:
    return f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}"


def generate(n: int, seed: int = 2026) -> Iterator[bytes]:
    """`n` raw messages, in arrival order."""
    rng = random.Random(seed)
    sent: list[tuple[str, str, str, str]] = []  # (sender, name, subject, mid) of earlier complaints
    for i in range(n):
        kind = _pick_kind(rng)
        if kind in ("followup", "near_duplicate") and not sent:
            kind = "nl"
        first, last = rng.choice(FIRST), rng.choice(LAST)
        name = f"{first} {last}"
        sender = f"{first.lower()}.{last.lower().replace(' ', '')}{i}@example.be"
        agency, agency_mail, topic = rng.choice(AGENCIES)
        city, zip_code = rng.choice(CITIES)
        fields = dict(d=rng.randint(1, 28), agency=agency, topic=topic, w=rng.randint(3, 30), n=rng.randint(2, 6),
                      ref=f"D{rng.randint(100000, 999999)}", name=name, street="Kerkstraat",
                      no=rng.randint(1, 200), zip=zip_code, city=city)
        mid = f"bench{seed}.{i:07d}"
        subject = f"Klacht over {topic}"
        if kind == "nl":
            raw = _headers(sender, name, subject, mid) + _plain(NL.format(**fields))
        elif kind == "fr":
            raw = _headers(sender, name, f"Plainte concernant {agency}", mid) + _plain(FR.format(**fields))
        elif kind == "html":
            html = "".join(f"<p>{line}</p>" for line in NL.format(**fields).split("\n") if line)
            raw = (_headers(sender, name, subject, mid) + "Content-Type: text/html; charset=utf-8\r\n\r\n"
                   f"<html><body>{html}</body></html>")
        elif kind == "pdf":
            pdf = base64.encodebytes(PDF + os.urandom(rng.randint(2000, 12000))).decode().replace("\n", "\r\n")
            raw = (_headers(sender, name, subject + " (brief in bijlage)", mid)
                   + 'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n' + _plain(NL.format(**fields))
                   + '\r\n--b1\r\nContent-Type: application/pdf; name="brief.pdf"\r\nContent-Transfer-Encoding: base64'
                   + '\r\nContent-Disposition: attachment; filename="brief.pdf"\r\n\r\n' + pdf + "\r\n--b1--\r\n")
        elif kind == "followup":
            sender, name, old_subject, old_mid = rng.choice(sent[-2000:])
            extra = f"In-Reply-To: <{old_mid}@mail.example.be>\r\nReferences: <{old_mid}@mail.example.be>\r\n"
            raw = _headers(sender, name, f"Re: {old_subject}", mid, extra=extra) + _plain(
                f"Beste,\n\nIk heb nog altijd niets gehoord. Hierbij nog een bijkomend document.\n\n{name}\n")
        elif kind == "forward":
            raw = _headers(sender, name, f"Fwd: Uw dossier {fields['ref']}", mid) + _plain(
                f"Zie hieronder het antwoord dat ik kreeg.\n\n{name}\n\n---------- Forwarded message ---------\n"
                f"From: {agency} <{agency_mail}>\nDate: Fri, 20 Nov 2026 at 14:02\nSubject: Uw dossier {fields['ref']}\n"
                f"To: {name} <{sender}>\n\nGeachte,\n\nUw aanvraag is nog in behandeling. Wij contacteren u zodra "
                f"er een beslissing is.\n\nMet vriendelijke groeten,\n{agency}\n")
        elif kind == "near_duplicate":
            sender, name, old_subject, _ = rng.choice(sent[-2000:])
            fields["name"] = name
            raw = _headers(sender, name, old_subject, mid) + _plain(NL.format(**fields).replace("Geachte", "Beste"))
        elif kind == "auto_reply":
            raw = (_headers(sender, name, "Afwezigheidsbericht: Uw ontvangstbevestiging", mid,
                            extra="Auto-Submitted: auto-replied\r\nX-Autoreply: yes\r\n")
                   + _plain(f"Ik ben afwezig tot maandag en lees mijn mail niet.\n\n{name}\n"))
        else:  # bounce
            raw = (f"From: Mail Delivery System <MAILER-DAEMON@mx.example.be>\r\nTo: klachten@vlaamseombudsdienst.be\r\n"
                   f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <{mid}@mx.example.be>\r\n"
                   "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
                   'Content-Type: multipart/report; report-type=delivery-status; boundary="r1"\r\n\r\n'
                   "--r1\r\nContent-Type: text/plain\r\n\r\nThis is the mail system. Your message could not be delivered.\r\n"
                   f"--r1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.be\r\n\r\n"
                   f"Final-Recipient: rfc822; nobody{i}@example.be\r\nAction: failed\r\nStatus: 5.1.1\r\n"
                   "--r1--\r\n")
        if kind in ("nl", "fr", "html", "pdf"):
            sent.append((sender, name, subject, mid))
            if len(sent) > 4000:
                del sent[:2000]
        yield raw.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def load_maildir(home: Path, raws: Iterator[bytes], *, uid: int, gid: int, folder: str = "") -> int:
    """Write messages straight into a Maildir (`folder` "" is INBOX, else a Maildir++ folder);
    Dovecot picks them up at the next SELECT. Returns the count."""
    root = home / "Maildir"
    box = root / f".{folder}" if folder else root
    for path in (home, root, box, box / "cur", box / "new", box / "tmp"):
        path.mkdir(exist_ok=True)
        os.chown(path, uid, gid)
    if folder:
        (box / "maildirfolder").touch()
    stamp, pid, count = int(time.time()), os.getpid(), 0
    new = box / "new"
    for count, raw in enumerate(raws, 1):
        path = new / f"{stamp}.M{count}P{pid}.bench,S={len(raw)}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, raw)
            os.fchown(fd, uid, gid)
        finally:
            os.close(fd)
    return count


def clear_maildir(home: Path) -> None:
    """Remove every folder of the user (no client may be connected)."""
    shutil.rmtree(home / "Maildir", ignore_errors=True)
