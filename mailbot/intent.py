"""What the citizen asks or tells us, in nl/fr/en/de: status requests, contact preference,
anonymity, first-line contact, the agency's solution. Pure; phrase lists, no model.

Phrases are matched on the new text only (not on quoted history), case- and
accent-insensitively, so "Où en est" and "ou en est" both count.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers

from mailbot.model import Facts
from mailbot.webform import phone_fields


def _gap(limit: int, *, affirmed: bool = False, not_to_us: bool = False) -> str:
    """Up to `limit` characters inside one sentence, never `.*`: texts run to MAX_FACT_TEXT.
    A full stop before a letter or digit ("0486/55.44.33", "a.u.b.") does not end the sentence.
    `affirmed` gaps do not cross a negation: "ik heb hen nog niet gemaild" is no contact.
    `not_to_us` gaps do not cross "u"/"jullie": "ik heb u al gemeld dat…" told us, not the agency."""
    char = r"(?:[^.!?]|\.(?=\w))"
    if affirmed:
        char = rf"(?:(?!\b(?:niet|nooit|geen|not|never|nicht|nie|keine?n?|pas|jamais)\b){char})"
    if not_to_us:
        char = rf"(?:(?!\b(?:u|jullie|ombudsman|ombudsdienst)\b){char})"
    return f"{char}{{0,{limit}}}"


_GAP, _SHORT, _AFFIRMED, _AFFIRMED_SHORT = _gap(40), _gap(20), _gap(40, affirmed=True), _gap(20, affirmed=True)
_NL_AFFIRMED, _NL_AFFIRMED_SHORT = _gap(40, affirmed=True, not_to_us=True), _gap(20, affirmed=True, not_to_us=True)
_NL_CASE = r"\b(?:mijn|ons|onze|het) (?:dossier|klacht)\b"
_NL_ABOUT = r"(?:in|over|van|omtrent|rond|voor|bij|ivm|in verband met|betreffende|aangaande|met betrekking tot)"
_FR_CASE = r"\b(?:mon|ma|notre) (?:dossier|plainte|reclamation)\b"
_EN_CASE = r"\b(?:my|our) (?:complaint|case|file)\b"
_DE_CASE = r"\b(?:meiner|unserer|meinem|unserem|meines|unseres) (?:beschwerde|angelegenheit|akte|sache|eingabe|falles|falls|fall|verfahrens)\b"
# Questions about news without naming the case: they ask for the status only in a short mail. In
# a long complaint they are usually the citizen's report of asking the agency ("ik vroeg: is er al nieuws?").
_NL_NEWS_Q = r"\b(?:is er|zijn er|heeft u|hebt u|hebben jullie|heb je|heeft men)(?: al| reeds| nog| intussen| ondertussen| inmiddels)* (?:enig |wat |nieuw |nieuwe )?(?:nieuws|ontwikkelingen|vooruitgang|evolutie)\b"
_FR_NEWS_Q = r"\b(?:avez[- ]vous|auriez[- ]vous|y a[- ]t[- ]il|y-a-t-il|existe[- ]t[- ]il)(?: deja| enfin| eventuellement)* (?:du nouveau|du neuf|des nouvelles|une evolution|des progres)\b"
_EN_NEWS_Q = r"\b(?:is there|are there|do you have|have you got|have you had)(?: any)? (?:news|updates?|progress)\b"
_DE_NEWS_Q = r"\b(?:gibt es|haben sie|hatten sie|gabe es)(?: schon| bereits| inzwischen| mittlerweile| jetzt| etwas| was| irgendwelche)* (?:neues|neuigkeiten|fortschritte)\b"
SHORT_MAIL = 600  # folded characters (subject, greeting and signature included) for _STATUS_SHORT

_STATUS = (
    r"stand van zaken", r"hoe ?ver staat", r"hoever (is|zit)", r"stand van (mijn|het|ons) (dossier|klacht)",
    r"waar staat (mijn|het|ons) (dossier|klacht)", r"(al|reeds) nieuws (over|in|omtrent)",
    r"nog (steeds )?(niets|geen antwoord|geen nieuws) (gehoord|ontvangen)", r"wat is de status",
    # Present tense only: "ik vroeg hoe het met mijn dossier stond" tells what the citizen asked the agency.
    rf"\bhoe (?:staat|zit) het (?:er ?)?(?:nu |nog |al |ondertussen |intussen |inmiddels )?(?:voor )?met {_NL_CASE}",
    rf"\bhoe het (?:er )?(?:nu |ondertussen |intussen |inmiddels )?(?:voor )?met {_NL_CASE} (?:gaat|staat|zit)\b",
    _NL_NEWS_Q + _SHORT + _NL_CASE,
    # "update" needs the case: "een update van de software" is part of a complaint.
    rf"\bupdate (?:(?:gekregen|ontvangen|krijgen|geven|bezorgen|sturen) )?{_NL_ABOUT} {_NL_CASE}",
    r"ou en est", r"etat d'?avancement", r"(etat|suivi) de (mon|ma|notre) (dossier|plainte)",
    r"des nouvelles (de|concernant) (mon|ma|notre) (dossier|plainte)", r"ou en sommes[- ]nous",
    _FR_NEWS_Q + _SHORT + _FR_CASE,
    r"status of (my|our|the) (complaint|case|file)", r"any (update|news|progress) (on|about|regarding)",
    r"what is the status", r"(update|news) on my (complaint|case)", _EN_NEWS_Q + _SHORT + _EN_CASE,
    r"stand der dinge", r"wie ist der (aktuelle )?stand", r"sachstand", r"bearbeitungsstand",
    r"gibt es (schon )?neuigkeiten", _DE_NEWS_Q + _SHORT + _DE_CASE,
    # Asking about the state, not reporting it: "die Behörde hat mich nicht über den Stand informiert".
    rf"\b(?:nach dem|uber den) (?:aktuellen |derzeitigen |neuesten )?stand {_DE_CASE}{_SHORT}\b(?:zu )?(?:erkundigen|erfragen|fragen|erfahren|informieren)\b",
)
_STATUS_SHORT = (
    _NL_NEWS_Q, rf"\b(?:kan|kunt|kunnen|mag|zou|zoudt|graag){_SHORT}\been update (?:krijgen|ontvangen|gekregen|geven|bezorgen|sturen)\b",
    _FR_NEWS_Q, r"\bdu nouveau ?\?",
    _EN_NEWS_Q, r"\bany (?:news|updates?|progress)(?: yet| so far)? ?\?",
    r"\b(?:could|can|would|will) you (?:please )?(?:give|send|provide) (?:me|us) (?:an|a|any)(?: quick| short| brief)? update\b",
    _DE_NEWS_Q,
)
_PREFERS_PHONE = (
    r"\bbel (mij|me)\b", r"(mij|me) (op)?bellen", r"liefst telefonisch", r"telefonisch (contact|bereikbaar)",
    r"(contacteer|bereik) (mij|me) (liefst )?(telefonisch|per telefoon|via gsm)", r"\bbelt u (mij|me)\b",
    # A request ("gelieve mij te bellen"), not a report ("de dienst beloofde mij te bellen").
    rf"\b(?:gelieve|graag|liefst|kan u|kunt u|wil u|wilt u|zou u|zoudt u|mag u|kunnen jullie|kan je|kun je){_AFFIRMED_SHORT}\b(?:mij|me)\b{_AFFIRMED_SHORT}\b(?:terug|op)?bellen\b",
    r"appelez[- ]moi", r"me (telephoner|rappeler|contacter par telephone)", r"par telephone de preference",
    r"de preference par telephone", r"joignable (par|au) telephone",
    r"\b(?:prefere|prefererais|souhaite|souhaiterais|aimerais|voudrais)(?: etre)? (?:contacte|joint|appele|rappele)e?s? (?:de preference )?par telephone",
    r"\b(?:contactez|joignez|rappelez|telephonez)[- ]moi\b", r"\b(?:me |m' ?)(?:contacter|joindre|appeler|rappeler) (?:de preference )?(?:par telephone|au (?:\+|0))",
    r"\bcall me\b", r"\bphone me\b", r"(contact|reach) me by (phone|telephone)", r"prefer (a )?(phone|telephone)",
    r"rufen sie mich( bitte)? an", r"telefonisch (erreichbar|kontaktieren)", r"lieber telefonisch",
    # "Bitte rufen Sie mich unter 0479 12 34 56 an": the number sits inside the separable verb.
    rf"\brufen sie mich\b{_AFFIRMED}\ban\b", rf"\b(?:konnen|konnten|wurden|durfen) sie mich{_AFFIRMED}\b(?:anrufen|zuruckrufen)\b",
    rf"\bbitte\b{_AFFIRMED_SHORT}\b(?:anrufen|zuruckrufen)\b",
)
_ANON_ID_NL = r"\b(?:naam|identiteit|persoonsgegevens|gegevens)\b"
_ANON_ID_FR = r"\b(?:mon nom|mon identite|mes coordonnees|mes donnees(?: personnelles)?)\b"
_ANON_ID_DE = r"\b(?:mein name|meine identitat|meine (?:personlichen )?daten|meine kontaktdaten)\b"
_ANONYMITY = (
    # The bare word is often a mention ("na een anonieme melding van een buur"): it needs a wish.
    r"\banoniem (?:te )?(?:blijven|houden|behandelen|behandeld|klagen|melden|verwerken)\b",
    r"\b(?:graag|liefst|wens|wil|verkies)(?: graag| liever| ook| echt| uitdrukkelijk)? anoniem\b",
    rf"\b(?:vraag|verzoek|wens|wil)\w*{_SHORT}\banonimiteit\b", r"\banonimiteit (?:vragen|verzoeken|wensen|bewaren|behouden|garanderen|respecteren)\b",
    r"(mijn )?(naam|identiteit|gegevens) niet (door|mee)?(geven|gedeeld|delen|bekend)",
    r"\b(?:naam|identiteit|persoonsgegevens|gegevens) niet (?:te |door te |mee te |bekend te |kenbaar te )?(?:vermelden|doorgeven|meedelen|bekendmaken|delen|noemen|geven|weten|kennen|doorspelen)\b",
    # A modal makes it a wish: "mijn naam mag niet doorgegeven worden", not "werd niet doorgegeven".
    rf"{_ANON_ID_NL}{_SHORT}\b(?:mag|mogen|moet|moeten) (?:echt |zeker |absoluut |in geen geval )?niet\b{_GAP}\b(?:doorgegeven|vermeld|meegedeeld|bekendgemaakt|bekend gemaakt|gedeeld|genoemd|kenbaar gemaakt|geweten|doorgespeeld)\b",
    rf"\b(?:wil|wens|verkies|hoop)(?: liever| echt)? niet dat\b{_GAP}\b(?:weet|weten|te weten komt|te weten komen|ontdekt|ontdekken|hoort|horen)\b",
    r"niet (weten|zeggen) dat ik", r"vertrouwelijk behandel",
    rf"\b(?:wil|wens|verkies|hoop)(?: liever| echt| absoluut| zeker)? niet dat (?:mijn|onze) (?:naam|namen|identiteit|persoonsgegevens|contactgegevens|gegevens|adres)\b{_GAP}\b(?:doorgegeven|bezorgd|overgemaakt|doorgestuurd|bekendgemaakt|bekend gemaakt|gedeeld|meegedeeld|gegeven|vermeld|genoemd|kenbaar gemaakt)\b",
    rf"{_ANON_ID_NL}{_AFFIRMED_SHORT}\bgeheim (?:blijft|blijven|te blijven|houden|te houden|gehouden|houdt)\b",
    rf"\bhou(?:d|dt|den)?\b(?: u| jullie)? (?:mijn|onze) (?:naam|namen|identiteit|gegevens|persoonsgegevens)\b{_AFFIRMED_SHORT}\bgeheim\b",
    r"\b(?:vraag|verzoek|wens|wil|vraagt|vragen)\b(?: \w+){0,3} (?:om )?(?:volledige |strikte |de nodige )?(?:vertrouwelijkheid|discretie)\b",
    r"\bdiscreet (?:te )?(?:behandelen|behandel|omgaan|omspringen)\b", r"\bvertrouwelijk (?:te )?(?:houden|blijven)\b",
    rf"\b(?:kan|kunt|kunnen|gelieve|graag|wil|wilt|zou|zoudt|liefst)\b{_GAP}\bzonder (?:mijn|onze) (?:naam|namen|identiteit|gegevens) (?:te )?(?:vermelden|noemen|geven|door te geven|bekend te maken|mee te delen|kenbaar te maken)\b",
    r"\b(?:wil|wens|verkies|liefst|graag)(?: \w+){0,2} onbekend (?:te )?blijven\b",
    r"\b(?:rester|demeurer|reste|restions) anonymes?\b",
    rf"\b(?:demande|souhaite|veux|voudrais|prefere|garder|preserver|garantir|respecter|conserver)\w*\b{_SHORT}\banonymat\b",
    r"(ne pas|sans) (communiquer|divulguer|donner|reveler|transmettre|mentionner|citer|devoiler) (mon nom|mon identite|mes coordonnees)",
    rf"\bne (?:souhaite|veux|desire|voudrais|souhaiterais) pas que {_ANON_ID_FR}{_GAP}\b(?:communique|transmis|divulgue|revele|donne|cite|mentionne|connu|devoile)",
    rf"{_ANON_ID_FR}{_SHORT}\bne (?:soit|soient|doit|doivent|peut|peuvent) pas (?:etre )?(?:communique|transmis|divulgue|revele|donne|cite|mentionne|connu|devoile)",
    rf"{_ANON_ID_FR}{_SHORT}\b(?:reste|restent|rester|demeure|soit|soient|traitee?s?) (?:strictement )?(?:confidentiel|secret)",
    rf"\b(?:garder|gardez|garde|tenir|tenez|conserver|conservez)\b (?:{_ANON_ID_FR}|le secret sur {_ANON_ID_FR}) (?:strictement |totalement )?(?:secrete?s?|confidentiel(?:le)?s?|anonymes?)\b",
    r"\b(?:demande|souhaite|desire|voudrais|sollicite|prie)\w*\b(?: \w+){0,3} (?:la |une |toute )?(?:stricte )?(?:confidentialite|discretion)\b",
    rf"\btrait(?:er|ez|e|ee)\b{_AFFIRMED_SHORT}\b(?:confidentiellement|discretement|de (?:maniere|facon) (?:confidentielle|discrete)|en toute (?:confidentialite|discretion)|avec (?:discretion|confidentialite))\b",
    rf"\bne (?:veux|veut|souhaite|desire|voudrais|souhaiterais) pas qu(?:e |')\b{_GAP}\b(?:sache|sachent|apprenne|apprennent|decouvre|decouvrent|connaisse|connaissent)\b",
    r"\b(?:remain|stay|be kept|keep me|keep it|keep this|to be) anonymous\b", r"\b(?:complain|file this|report this) anonymously\b",
    rf"\b(?:request|ask|want|wish|would like|prefer|keep|guarantee|maintain|preserve|protect|respect)\w*\b{_SHORT}\banonymity\b",
    r"(not|don'?t|do not) (disclose|reveal|share|give) my (name|identity|details)",
    rf"\b(?:do not|don'?t|never) (?:tell|give|disclose|reveal|share|pass on|forward|mention|show)\b{_GAP}\bmy (?:name|identity|details|personal (?:data|details)|contact details)\b",
    rf"\bmy (?:name|identity|details|personal (?:data|details))\b{_SHORT}\b(?:remain|remains|stay|stays|kept|be kept|be treated|treated) (?:strictly )?(?:confidential|secret|anonymous|private)\b",
    r"keep my (name|identity) (confidential|secret)",
    r"\bkeep (?:this|it|my (?:complaint|report|name|identity|details)|me) (?:strictly )?(?:confidential|secret|private)\b",
    r"\b(?:request|ask for|want|wish for|would like|prefer|need)\b(?: \w+){0,2} (?:strict |full |complete )?confidentiality\b",
    rf"\b(?:treat|handle|deal with)\b{_AFFIRMED_SHORT}\b(?:confidentially|discreetly|anonymously|in (?:strict |complete )?confidence|as confidential)\b",
    rf"\b(?:do not|don'?t|never) (?:tell|inform|let)\b{_SHORT}\b(?:who i am|it was me|it's me|it is me|that it was me|my name)\b",
    rf"\b(?:rather|prefer(?: that)?)\b{_GAP}\b(?:didn'?t|did not|doesn'?t|does not|don'?t|do not|not|never) (?:know|find out|learn)\b{_SHORT}\b(?:it was me|who i am|my name|my identity|that i)\b",
    rf"\b(?:don'?t|do not) want\b{_GAP}\bto (?:know|find out|learn)\b{_SHORT}\b(?:my name|my identity|who i am|that i|it was me|it's me|it is me)\b",
    r"\banonym (?:bleiben|behandeln|behandelt|bearbeiten|bearbeitet|einreichen)\b", r"\b(?:mochte|will|bitte|wunsche)(?: gerne| lieber)? anonym\b",
    rf"\b(?:bitte|wunsche|mochte|wahren|schutzen|garantieren|bewahren)\w*\b{_SHORT}\banonymitat\b", r"\banonymitat (?:wahren|bewahren|schutzen|garantieren)\b",
    r"meinen namen nicht", r"identitat nicht", r"vertraulich behandel",
    rf"\b(?:soll|sollen|sollte|darf|durfen)\b{_SHORT}\b(?:nicht|keinesfalls|auf keinen fall)\b{_SHORT}\b(?:erfahren|wissen)\b{_SHORT}\b(?:wer ich bin|meinen namen|meine identitat|dass ich|dass es von mir|von mir)\b",
    rf"\b(?:mochte|will|wunsche|mochten|wollen)(?: \w+)? nicht,? dass\b{_GAP}\b(?:erfahrt|erfahren|weiss|wissen)\b",
    rf"\b(?:behandeln|bearbeiten) sie\b{_AFFIRMED_SHORT}\b(?:vertraulich|diskret)\b", r"\bdiskret (?:zu )?(?:behandeln|bearbeiten)\b",
    r"\b(?:bitte|bitten|wunsche|mochte|ersuche)\b(?: \w+){0,3} (?:um )?(?:absolute |strikte |vollstandige )?(?:vertraulichkeit|diskretion)\b",
    rf"\b(?:mein(?:en)? namen?|meine identitat|meine (?:personlichen )?daten)\b{_AFFIRMED_SHORT}\bgeheim (?:halten|gehalten|bleiben|bleibt)\b",
    rf"\bnicht,? dass {_ANON_ID_DE}{_GAP}\b(?:weitergegeben|weitergeleitet|mitgeteilt|genannt|offengelegt|bekanntgegeben|preisgegeben|bekannt)\b",
    rf"{_ANON_ID_DE}{_SHORT}\b(?:soll|sollte|darf|durfen|sollen) (?:bitte )?(?:nicht|keinesfalls|auf keinen fall)\b{_GAP}\b(?:weitergegeben|weitergeleitet|mitgeteilt|genannt|offengelegt|bekanntgegeben|preisgegeben)\b",
)
# "Ik heb <agency> al drie keer gemaild": subject, adverb and verb with short gaps between them.
# The verb first only inside a sentence ("daarom heb ik"): at its start it asks ("Heb ik al gemeld dat…?").
_NL_WE_HAVE = r"\b(?:(?:ik|wij|we) (?:heb|hebben|had|hadden)|(?<![.!?] )(?<!^)(?:heb|hebben|had|hadden) (?:ik|wij|we))\b"
_NL_ALREADY = r"\b(?:al|reeds|eerder|meermaals|herhaaldelijk|(?:\d+|een paar|twee|drie|vier|vijf|zes|tien|meerdere|verschillende|talloze|vele|heel wat) (?:keer|keren|maal|malen))\b"
_NL_CONTACTED = r"\b(?:gemaild|gemailed|gebeld|opgebeld|geschreven|aangeschreven|gecontacteerd|gemeld|geklaagd|contact opgenomen|aangesproken|een (?:klacht|brief|mail|e-mail) (?:ingediend|gestuurd))\b"
_EN_CONTACTED = r"(?:wrote|written|contacted|e-?mailed|mailed|called|phoned|rang|complained|reported|reached out|filed a complaint)"
_FR_AGAIN = r"(?:plusieurs fois|a plusieurs reprises|maintes fois|(?:deux|trois|quatre|cinq|\d+) fois)"
_FR_CONTACTED = r"\b(?:contacte|ecrit|telephone|appele|relance|signale|reclame|porte plainte|envoye (?:un|des|plusieurs|deux|trois) (?:mails?|courriels?|e-?mails?|lettres?|messages?))\b"
_DE_WE_HAVE = r"\b(?:(?:ich|wir) (?:habe|haben|hatte|hatten)|(?:habe|haben|hatte|hatten) (?:ich|wir))\b"
_DE_ALREADY = r"\b(?:bereits|schon|mehrfach|mehrmals|wiederholt|zweimal|dreimal|viermal|(?:zwei|drei|vier|\d+|mehrere|einige) ?male?)\b"
_DE_CONTACTED = r"\b(?:beschwert|kontaktiert|geschrieben|angeschrieben|angerufen|gemailt|gemeldet|gewandt|gewendet|reklamiert|eine beschwerde eingereicht)\b"
# "Ik heb dat gemeld bij De Lijn": reported to someone, without "al"; never across a negation.
_NL_REPORTED = r"\b(?:gemeld|gesignaleerd|aangekaart|aangegeven|doorgegeven)\b"
_FR_REPORTED = r"\b(?:signale|rapporte|declare|notifie)e?s?\b"
_EN_REPORTED = r"\b(?:reported|notified|flagged|raised)\b"
_FIRST_LINE = (
    r"(al|reeds|eerst) (een )?klacht (ingediend|neergelegd|gestuurd) bij", r"(al|reeds) (contact|klacht) .{0,40}(opgenomen|ingediend)",
    r"(al|reeds|eerst) (bij|naar) .{0,40}(geklaagd|gemaild|geschreven|gebeld)", r"klachtendienst .{0,60}(geantwoord|reactie|antwoord)",
    _NL_WE_HAVE + _NL_AFFIRMED + _NL_ALREADY + _NL_AFFIRMED + _NL_CONTACTED,
    r"deja (porte plainte|introduit une plainte|depose une plainte|contacte|ecrit a)", r"service (des plaintes|plaintes) .{0,60}repondu",
    rf"\b(?:j'ai|nous avons){_AFFIRMED}\b(?:deja|{_FR_AGAIN})\b{_AFFIRMED}{_FR_CONTACTED}",
    rf"\b(?:j'ai|nous avons) (?:deja )?{_FR_CONTACTED}{_AFFIRMED}\b(?:{_FR_AGAIN}|sans (?:aucune |la moindre )?reponse)\b",
    rf"\b(?:already|previously|repeatedly) {_EN_CONTACTED}\b",
    r"complaints? (department|service) .{0,60}(replied|answered|responded)",
    # No "already": the object or a repetition says it was the agency, several times.
    rf"\b(?:i|we) (?:have |had )?{_EN_CONTACTED} (?:to |with )?(?:them|the (?:agency|department|service|administration|office|municipality|city|council|company|organi[sz]ation)|their (?:office|help ?desk|customer service|complaints? (?:department|service|desk)))\b",
    rf"\b(?:i|we) (?:have |had )?{_EN_CONTACTED}\b{_AFFIRMED}\b(?:twice|several times|many times|multiple times|repeatedly|\w+ times)\b",
    r"(bereits|schon) (beschwert|kontaktiert|eine beschwerde eingereicht|geschrieben)",
    _DE_WE_HAVE + _AFFIRMED + _DE_ALREADY + _AFFIRMED + _DE_CONTACTED,
    # "I wrote to them twice, no answer": contact was made even without the word "klacht".
    r"\b(hen|hun|hem|haar|de dienst|het agentschap) (al|reeds) .{0,30}(gemaild|geschreven|gebeld|gecontacteerd|aangeschreven)",
    r"(geen|nooit) (antwoord|reactie) (gekregen|ontvangen)", r"\bzonder (enig )?(antwoord|reactie)\b",
    r"\b(?:kreeg|kregen|ontving|ontvingen) (?:nog )?(?:nooit|geen) (?:een |enig |enige )?(?:antwoord|reactie)\b",
    r"\b(les|leur|l'administration) (ai )?deja .{0,30}(ecrit|contacte|telephone|relance)",
    r"(sans|aucune) reponse\b", r"(never|no) (reply|response|answer) (from|received)", r"\bwithout (?:an? |any )?(?:answer|reply|response)\b",
    r"\bkeine (antwort|reaktion) (erhalten|bekommen)", r"\bohne (?:eine |jede )?(?:antwort|reaktion)\b",
    # Reported to someone: "ik heb dat gemeld bij De Lijn", "ik heb het bij De Lijn gemeld".
    rf"{_NL_WE_HAVE}{_NL_AFFIRMED_SHORT}{_NL_REPORTED} (?:bij|aan)\b",
    rf"{_NL_WE_HAVE}{_NL_AFFIRMED_SHORT}\b(?:bij|aan)\b{_NL_AFFIRMED_SHORT}{_NL_REPORTED}",
    rf"\b(?:je l'ai|nous l'avons|j'ai|nous avons|je les ai|nous les avons){_AFFIRMED_SHORT}{_FR_REPORTED}{_AFFIRMED_SHORT}\b(?:a|au|aux|aupres)\b",
    rf"\b(?:i|we)(?: have| had|'ve|'d)?(?: already)? {_EN_REPORTED}{_AFFIRMED_SHORT}\bto\b",
    rf"{_DE_WE_HAVE} (?:es|das|dies|dies auch|das problem|den fehler|den mangel|den vorfall|den schaden)\b{_AFFIRMED_SHORT}\bgemeldet\b",
    rf"{_DE_WE_HAVE}{_AFFIRMED_SHORT}\bbei\b{_AFFIRMED_SHORT}\bgemeldet\b",
)
# A web form's own question, answered yes on its line: "Hebt u al contact gehad met de dienst: ja".
_CONTACT_WORD = r"\b(?:contact|contacted|contacte|gecontacteerd|kontakt|kontaktiert)\b"
_AGENCY_WORD = (r"\b(?:dienst|overheidsdienst|instantie|administratie|bestuur|service|administration|agency|"
                r"department|authority|behorde|dienststelle|verwaltung|stelle|amt)\b")
_AGENCY_RE = re.compile(_AGENCY_WORD)
_FORM_CONTACT_QUESTION = re.compile(f"{_CONTACT_WORD}.{{0,40}}{_AGENCY_WORD}|{_AGENCY_WORD}.{{0,40}}{_CONTACT_WORD}")
_FORM_LINE = re.compile(r"^(?P<question>[^:?]{3,120})[:?]+ ?(?P<answer>ja|oui|yes)\b")
# A form's question about anonymity ("Anoniem: ja"), or about passing the name on, answered
# no ("Mag uw naam aan de betrokken dienst worden doorgegeven? Nee").
_FORM_ANSWER = re.compile(r"^(?P<question>[^:?]{3,120})[:?]+ ?(?P<answer>ja|oui|yes|nee|neen|non|no|nein)\b")
_FORM_ANON_WORD = re.compile(r"\b(?:anoniem\w*|anonimiteit|anonym\w*|anonymat|vertrouwelijk\w*|confidenti\w*|vertraulich\w*|"
                             r"geheim\w*|secret\w*|discreet|discretie|discretion|diskret\w*)\b")
_FORM_ANON_NEGATED = re.compile(r"\b(?:niet|geen|not|non|pas|nicht|kein\w*) (?:anoniem|anonym|vertrouwelijk|confidenti|vertraulich|geheim|secret)")
_FORM_NAME = r"\b(?:naam|namen|identiteit|nom|identite|name|identity|identitat)\b"
_FORM_DATA = r"\b(?:gegevens|persoonsgegevens|contactgegevens|coordonnees|donnees|details|data|daten|kontaktdaten)\b"
_FORM_PASS = (r"\b(?:doorgeven|doorgegeven|door te geven|doorsturen|doorgestuurd|delen|gedeeld|bekendmaken|bekendgemaakt|"
              r"vermelden|vermeld|meedelen|meegedeeld|communiquer|communique|communiques|communiquee|transmettre|transmis|"
              r"transmise|divulguer|divulgue|share|shared|pass(?:ed)? on|disclose|disclosed|forward|forwarded|give|given|"
              r"weitergeben|weitergegeben|weiterleiten|weitergeleitet|mitteilen|mitgeteilt|nennen|genannt|bekanntgeben)\b")
_FORM_NEGATION = re.compile(r"\b(?:niet|geen|not|pas|nicht|kein\w*)\b")
_OFFERED = (
    r"(stelt|stellen|bieden|biedt) .{0,40}(voor|aan)\b.{0,40}(oplossing|terugbetaling|compensatie|regeling)",
    r"(bieden|biedt|stellen|stelt) (u |je )?.{0,40}(oplossing|terugbetaling|compensatie|regeling|schadevergoeding).{0,20}\b(aan|voor)\b",
    r"(?<!geen )(oplossing|voorstel|terugbetaling|compensatie) (aangeboden|voorgesteld)", r"wij stellen (u )?voor",
    # "kunnen wij u een terugbetaling van 385 euro voorstellen", "heeft mij ... voorgesteld"; not "geen terugbetaling".
    rf"(?<!geen )(?<!nooit een )\b(?:oplossing|terugbetaling|compensatie|regeling|schadevergoeding|vergoeding|tegemoetkoming|korting)\b{_AFFIRMED}\b(?:voorstellen|aanbieden|voorgesteld|aangeboden|voor te stellen|aan te bieden)\b",
    r"(nous vous proposons|propose une solution|proposition de (remboursement|solution))",
    r"\b(?:pouvons|pourrions|souhaitons|allons) vous (?:proposer|offrir)\b",
    r"(we|we would like to) (offer|propose)", r"offered (a|to) (solution|refund|compensation)",
    r"\bwe (?:can|could|will|are (?:happy|pleased|able) to) (?:offer|propose)\b",
    r"(bieten|schlagen) (ihnen )?.{0,30}(an|vor)\b.{0,30}(losung|erstattung)", r"losung angeboten",
    rf"\b(?:konnen|mochten|wurden) (?:wir )?ihnen\b{_AFFIRMED}\b(?:anbieten|vorschlagen)\b",
)
_ACCEPTED = (
    r"(ik|wij|we) (ga|gaan) akkoord met (het|dit|hun|dat) (voorstel|oplossing)", r"(aanvaard|accepteer)(en)? (het|dit|hun) (voorstel|oplossing)",
    r"(j'?accepte|nous acceptons) (la|leur|cette) (proposition|solution)", r"je suis d'?accord avec (la|leur) (proposition|solution)",
    r"(i|we) (accept|agree to|agree with) (the|their|this) (offer|proposal|solution)",
    r"(ich nehme|wir nehmen) (das|den|ihr) (angebot|vorschlag) an", r"(akzeptiere|akzeptieren) (das|den) (angebot|vorschlag|losung)",
)
_EMAIL = re.compile(r"[\w.+'-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+")  # bounded: no quadratic scan of long words
# The citizen asks us to use the address: merely mentioning one ("ik mailde naar info@dienst.be")
# is not enough. Matched on the folded sentence around the address.
_EMAIL_REQUEST = (
    rf"\b(?:e-?mail|mail|antwoord|contacteer|bereik|schrijf|stuur)t?(?: u| je| jullie)? (?:mij|me|ons)\b{_SHORT}\b(?:op|via|naar|aan)\b",
    rf"\b(?:kan|kunt|kunnen|mag|moogt|gelieve|graag|liefst|best|of)\b{_SHORT}\b(?:mailen|schrijven|antwoorden|contacteren|bereiken|sturen) (?:naar|op|via|aan)\b",
    r"\bmijn (?:nieuwe? |andere? |tweede |prive ?|persoonlijke? |huidige? )?(?:e-?mail-?adres|mailadres|e-?mail|adres)(?: is| luidt| wordt| ?:)",
    r"\b(?:op|naar|via) mijn (?:nieuwe? |andere? |tweede |prive ?|persoonlijke? |huidige? )?(?:e-?mail-?adres|mailadres|adres)\b",
    r"\b(?:is|wordt) (?:voortaan )?mijn (?:nieuwe? |andere? )?(?:e-?mail-?adres|mailadres|adres)\b", r"\bmijn nieuwe? (?:e-?mail-?adres|mailadres|adres)\b",
    r"\b(?:ben|is|zijn) (?:best |liefst |enkel |ook )?(?:bereikbaar|te bereiken) (?:op|via)\b", r"\bjoignable (?:a|sur|via)\b",
    r"\b(?:repondez|ecrivez|reponds|ecris|contactez|envoyez)[- ]moi\b", r"\b(?:me |m' ?)(?:repondre|ecrire|contacter|joindre)\b",
    r"\b(?:ma|mon) (?:nouvelle |nouvel |autre )?(?:adresse|courriel|e-?mail)(?: e-?mail| electronique| courriel)?(?: est| sera| ?:)",
    r"\b(?:ma nouvelle adresse|mon nouvel (?:e-?mail|courriel))\b",
    rf"\b(?:write|reply|respond|answer|e-?mail|mail|contact) (?:to )?(?:me|us)\b{_SHORT}\b(?:at|on|via|to)\b",
    r"\bplease (?:reply|respond|write|answer)(?: only)? to\b", r"\bmy (?:new |other |private |personal |current )?(?:e-?mail )?address(?: is| ?:)",
    r"\bis my (?:new |other )?(?:e-?mail )?address\b", r"\bmy new (?:e-?mail )?address\b",
    r"\bcan be reached (?:at|on|via)\b", r"\berreichbar (?:unter|uber)\b",
    rf"\b(?:schreiben|antworten|senden|mailen|kontaktieren|erreichen)(?: sie)? (?:mir|mich|uns)\b{_SHORT}\b(?:an|unter|auf|uber)\b",
    # "meine E-Mail an info@… geschickt" is the message, not an address to use.
    r"\bmeine (?:neue |andere |private )?(?:e-?mail-?adresse|e-?mail|adresse)(?: ist| lautet| ?:)",
    r"\bmeine neue (?:e-?mail-?adresse|e-?mail|adresse)\b", r"\b(?:an|uber|unter) meine (?:andere |private )?(?:e-?mail-?)?adresse\b",
)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n\s*\n")
_CUE_BEFORE, _CUE_AFTER = 120, 60  # characters of context around an address
# A negation up to two words before an anonymity phrase: "ik wil niet anoniem blijven",
# "je ne veux pas rester anonyme", "I don't need to remain anonymous", "nicht anonym bleiben".
_NEGATED_BEFORE = re.compile(r"(?:\b(?:niet|geen|nooit|not|never|no|pas|plus|jamais|nicht|kein|keine|nie)\b|n't)(?: [\w']+){0,2} ?$")


def _compile(phrases: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in phrases))


_PATTERNS = {name: _compile(p) for name, p in (
    ("status", _STATUS), ("status_short", _STATUS_SHORT), ("phone", _PREFERS_PHONE), ("anon", _ANONYMITY),
    ("first", _FIRST_LINE), ("offered", _OFFERED), ("accepted", _ACCEPTED), ("email", _EMAIL_REQUEST),
)}


_COMBINING = re.compile(r"[\u0300-\u036f]")
# Cheap candidates first: phonenumbers' own matcher scans every digit and costs ~2 ms a mail.
_PHONE_CANDIDATE = re.compile(r"(?<![\w.,/-])(?:\+|00)?\(?\d[\d ()./-]{6,17}\d(?![\w/-]|[.,]\d)")
MAX_FACT_TEXT = 20_000  # characters; a citizen's own words are far shorter than that


def fold(text: str) -> str:
    """Lower-case, accents removed, apostrophes and spaces normalised: what patterns see."""
    text = text.lower().replace("\u2019", "'")
    if not text.isascii():
        text = _COMBINING.sub("", unicodedata.normalize("NFKD", text))
    return " ".join(text.split())


def phone_numbers(text: str) -> tuple[str, ...]:
    """Valid phone numbers in the text (Belgian notation by default), in E.164, in order."""
    found: list[str] = []
    for candidate in _PHONE_CANDIDATE.findall(text[:MAX_FACT_TEXT]):
        if sum(ch.isdigit() for ch in candidate) < 8 or re.fullmatch(r"\d{1,2}[./-]\d{1,2}[./-]\d{2,4}", candidate.strip()):
            continue  # too short for a Belgian number, or a date
        try:
            number = phonenumbers.parse(candidate, "BE")
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            if e164 not in found:
                found.append(e164)
    return tuple(found)


def alternative_email(text: str, known: frozenset[str]) -> str | None:
    """An address the writer asks us to use: not a known one, in a sentence that asks for it."""
    if "@" not in text:
        return None
    own = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))
    for found in _EMAIL.finditer(own):
        address = found.group().strip(".'").lower()
        if address in known:
            continue
        before = _SENTENCE_END.split(own[max(0, found.start() - _CUE_BEFORE):found.start()])[-1]
        after = _SENTENCE_END.split(own[found.end():found.end() + _CUE_AFTER])[0]
        if _PATTERNS["email"].search(f"{fold(before)} {fold(after)}"):
            return address
    return None


def form_says_contacted(text: str) -> bool:
    """A web form line asking whether the agency was contacted, answered yes on that line
    ("Contact met de dienst: ja"); "nee" or an empty answer is no contact."""
    for line in text.splitlines():
        if ":" not in line and "?" not in line:
            continue
        found = _FORM_LINE.match(fold(line))
        if found and _FORM_CONTACT_QUESTION.search(found.group("question")):
            return True
    return False


def form_says_anonymous(text: str) -> bool:
    """A web form line asking for anonymity answered yes ("Anoniem: ja", "Anonymat souhaité : oui"),
    or asking whether the name may be passed on to the agency answered no ("Naam doorgeven aan
    de dienst? Nee"). Generic data ("gegevens") counts only with the agency named: "Gegevens
    delen met partners: nee" is a consent line, not anonymity."""
    for line in text.splitlines():
        if ":" not in line and "?" not in line:
            continue
        found = _FORM_ANSWER.match(fold(line))
        if found is None:
            continue
        question, yes = found.group("question"), found.group("answer") in ("ja", "oui", "yes")
        if _FORM_ANON_WORD.search(question):
            if yes and not _FORM_ANON_NEGATED.search(question):
                return True
        elif re.search(_FORM_PASS, question) and (
                re.search(_FORM_NAME, question) or (re.search(_FORM_DATA, question) and _AGENCY_RE.search(question))):
            if yes == bool(_FORM_NEGATION.search(question)):  # "Mag … doorgegeven worden? Nee"; "… niet …? Ja"
                return True
    return False


def asks_anonymity(folded: str) -> bool:
    """An anonymity wish in the folded text, not one negated right before it: "Ik wil niet
    anoniem blijven, u mag mijn naam geven" refuses anonymity."""
    for found in _PATTERNS["anon"].finditer(folded):
        before = _SENTENCE_END.split(folded[max(0, found.start() - 40):found.start()])[-1]
        if not _NEGATED_BEFORE.search(before):
            return True
    return False


def detect_facts(text: str, *, known_addresses: frozenset[str] = frozenset(), forwarded_text: str = "") -> Facts:
    """The facts stated in `text` (the new text); the agency's offer may sit in `forwarded_text`."""
    text = text[:MAX_FACT_TEXT]
    folded = fold(text)
    # The number in a phone field ("Telefoon: …", a web form's, a signature's) first: the
    # citizen's own, before any number the complaint mentions (the agency's, a helpline).
    phones = tuple(dict.fromkeys(phone_numbers(phone_fields(text)) + phone_numbers(text)))
    return Facts(
        status_request=bool(
            _PATTERNS["status"].search(folded)
            or (len(folded) <= SHORT_MAIL and _PATTERNS["status_short"].search(folded))
        ),
        phone_numbers=phones,
        prefers_phone=bool(_PATTERNS["phone"].search(folded)),
        alternative_email=alternative_email(text, known_addresses),
        anonymity_requested=asks_anonymity(folded) or form_says_anonymous(text),
        first_line_contact=bool(_PATTERNS["first"].search(folded)) or form_says_contacted(text),
        solution_offered=bool(_PATTERNS["offered"].search(folded + " " + fold(forwarded_text[:MAX_FACT_TEXT]))),
        solution_accepted=bool(_PATTERNS["accepted"].search(folded)),
    )
