"""Base complaints for the labelled matching set (fictional people, realistic wording).

Each entry: subject, body, a paraphrase written by hand (what a citizen sends when they
try again a week later), and a different complaint about the same agency (a hard
negative). `build_pairs.py` turns them into labelled pairs.
"""

BASES = [
    dict(lang="nl", subject="Klacht over mijn studietoelage",
         body="Geachte,\n\nIn maart heb ik een studietoelage aangevraagd bij de afdeling Studietoelagen. "
              "Na vier maanden heb ik nog steeds geen beslissing ontvangen. Ik heb hen al twee keer gemaild "
              "en één keer gebeld, maar niemand kan mij zeggen wanneer mijn dossier behandeld wordt. "
              "Mijn zoon begint in september aan de hogeschool en we hebben dat geld nodig.\n\nMet vriendelijke groeten,\nSofie Maes",
         para_subject="Nog altijd geen beslissing studietoelage",
         para_body="Beste,\n\nIk schrijf u opnieuw over de studietoelage die ik in maart aanvroeg. Vier maanden later "
                   "is er nog altijd geen beslissing. Mails en telefoontjes naar de afdeling Studietoelagen leveren "
                   "niets op: niemand weet wanneer mijn dossier aan de beurt is. In september start mijn zoon aan de "
                   "hogeschool, dus we rekenen op dat geld.\n\nGroeten,\nSofie",
         other_subject="Terugvordering schooltoelage",
         other_body="Geachte,\n\nDe afdeling Studietoelagen vraagt de schooltoelage van vorig jaar terug omdat mijn "
                    "dochter te veel afwezig zou zijn geweest. Zij was echter ziek en we hebben doktersattesten "
                    "ingediend. Ik vind de terugvordering onterecht.\n\nSofie Maes"),
    dict(lang="nl", subject="Bus 58 stopt niet meer aan onze halte",
         body="Beste,\n\nSinds september stopt bus 58 van De Lijn niet meer aan de halte Kerkstraat in Mariakerke. "
              "Voor de bewoners van het woonzorgcentrum is de volgende halte te ver. Ik heb een klacht ingediend bij "
              "de klantendienst, maar hun antwoord ging niet over mijn vraag.\n\nTom Wouters",
         para_subject="halte Kerkstraat Mariakerke afgeschaft",
         para_body="Goedendag,\n\nDe halte Kerkstraat in Mariakerke wordt sinds september niet meer bediend door lijn 58. "
                   "Oudere bewoners van het woonzorgcentrum kunnen de volgende halte niet te voet bereiken. De "
                   "klantendienst van De Lijn antwoordde op mijn klacht met een standaardbrief die mijn vraag niet "
                   "beantwoordt.\n\nMvg\nTom Wouters",
         other_subject="Boete op de tram onterecht",
         other_body="Beste,\n\nIk kreeg een boete van 75 euro op tram 1 omdat mijn abonnement niet geldig zou zijn. "
                    "Mijn abonnement was wel degelijk geldig, de scanner werkte niet. De Lijn weigert de boete te "
                    "annuleren.\n\nTom Wouters"),
    dict(lang="nl", subject="Geen antwoord van VDAB over mijn opleidingscheques",
         body="Geachte mevrouw, geachte heer,\n\nIn januari heb ik opleidingscheques aangevraagd voor een cursus "
              "boekhouden. De VDAB heeft mijn aanvraag goedgekeurd maar de cheques zijn nooit op mijn rekening "
              "verschenen. Ik heb drie keer naar de klachtendienst gemaild zonder reactie. De cursus begint binnen "
              "twee weken.\n\nHoogachtend,\nAhmed El Amrani",
         para_subject="opleidingscheques nog altijd niet ontvangen",
         para_body="Goeiedag,\n\nMijn aanvraag voor opleidingscheques (cursus boekhouden, januari) werd goedgekeurd, "
                   "maar ik heb de cheques nooit gekregen. Drie mails aan de klachtendienst van de VDAB bleven "
                   "onbeantwoord en over twee weken start de opleiding.\n\nAhmed El Amrani",
         other_subject="VDAB schrapt mijn inschrijving als werkzoekende",
         other_body="Geachte,\n\nDe VDAB heeft mijn inschrijving als werkzoekende geschrapt omdat ik niet op een "
                    "afspraak zou zijn verschenen. Ik heb die uitnodiging nooit ontvangen. Nu dreig ik mijn "
                    "uitkering te verliezen.\n\nAhmed El Amrani"),
    dict(lang="nl", subject="Huurpremie geweigerd",
         body="Beste,\n\nMijn aanvraag voor de Vlaamse huurpremie werd geweigerd omdat mijn dossier onvolledig zou zijn. "
              "Ik heb alle documenten, ook het huurcontract en het inkomensattest, via het e-loket opgeladen. "
              "Wonen in Vlaanderen zegt dat ze niets ontvangen hebben. Ik heb screenshots van de upload.\n\nGroeten,\nLinda Claes",
         para_subject="Weigering huurpremie - documenten wel opgeladen",
         para_body="Geachte,\n\nWonen in Vlaanderen weigert mijn huurpremie wegens een onvolledig dossier. Nochtans heb ik "
                   "huurcontract en inkomensattest via het e-loket ingediend; ik heb er schermafdrukken van. Volgens "
                   "het agentschap is er niets toegekomen.\n\nLinda Claes",
         other_subject="Sociale huurwoning: wachtlijst",
         other_body="Beste,\n\nIk sta al zes jaar op de wachtlijst voor een sociale huurwoning. Nu blijkt dat mijn "
                    "inschrijving geschrapt is omdat ik een brief niet beantwoord heb die naar mijn oude adres gestuurd "
                    "werd.\n\nLinda Claes"),
    dict(lang="nl", subject="Onroerende voorheffing twee keer betaald",
         body="Geachte,\n\nIk heb de onroerende voorheffing voor 2025 twee keer betaald, één keer via domiciliëring en "
              "één keer met een overschrijving. De Vlaamse Belastingdienst bevestigt de dubbele betaling maar betaalt "
              "het bedrag van 1.240 euro al vijf maanden niet terug.\n\nMet vriendelijke groet,\nMarc Jacobs",
         para_subject="terugbetaling dubbele betaling onroerende voorheffing",
         para_body="Beste,\n\nDoor een domiciliëring en een overschrijving betaalde ik mijn onroerende voorheffing 2025 "
                   "dubbel. De belastingdienst erkent dat, maar de 1.240 euro is na vijf maanden nog altijd niet "
                   "teruggestort.\n\nMarc Jacobs",
         other_subject="Erfbelasting: verkeerde waarde woning",
         other_body="Geachte,\n\nIn de aangifte erfbelasting na het overlijden van mijn moeder heeft de Vlaamse "
                    "Belastingdienst de woning veel te hoog geschat. Een schatter kwam tot een lagere waarde. Mijn "
                    "bezwaar werd zonder motivering afgewezen.\n\nMarc Jacobs"),
    dict(lang="nl", subject="Zorgbudget voor ouderen stopgezet",
         body="Beste,\n\nHet zorgbudget voor ouderen met een zorgnood van mijn vader is plots stopgezet. Er kwam geen "
              "brief en geen uitleg. Mijn vader is 84 en woont nog thuis met hulp. De zorgkas verwijst naar Vlaamse "
              "sociale bescherming en omgekeerd.\n\nAn Vermeulen",
         para_subject="zorgbudget papa zonder uitleg gestopt",
         para_body="Goedemiddag,\n\nZonder brief of uitleg is het zorgbudget voor ouderen van mijn vader (84, woont "
                   "thuis met hulp) gestopt. Zorgkas en Vlaamse sociale bescherming sturen mij van het kastje naar "
                   "de muur.\n\nVriendelijke groeten\nAn",
         other_subject="Zorgbudget zwaar zorgbehoevenden aanvraag",
         other_body="Beste,\n\nMijn schoonmoeder heeft een aanvraag gedaan voor het zorgbudget voor zwaar "
                    "zorgbehoevenden maar de indicatiestelling is na zes maanden nog niet gebeurd.\n\nAn Vermeulen"),
    dict(lang="nl", subject="Kinderbijslag / groeipakket niet betaald",
         body="Geachte,\n\nSinds de geboorte van onze dochter in februari hebben wij geen groeipakket ontvangen. "
              "Het startbedrag is ook niet betaald. De uitbetaler zegt dat Opgroeien het dossier nog moet "
              "goedkeuren, Opgroeien zegt dat de uitbetaler aan zet is.\n\nKim en Pieter Desmet",
         para_subject="nog steeds geen groeipakket voor onze dochter",
         para_body="Beste,\n\nOnze dochter werd in februari geboren en wij kregen tot nu toe geen groeipakket, ook het "
                   "startbedrag niet. De uitbetaler en Opgroeien schuiven de verantwoordelijkheid naar elkaar door.\n\nKim Desmet",
         other_subject="Kinderopvang: plaats geweigerd",
         other_body="Geachte,\n\nDe kinderopvang in onze gemeente weigert onze zoon omdat we niet voorrang hebben, "
                    "terwijl we allebei werken. Opgroeien zegt dat ze niets kunnen doen.\n\nKim en Pieter Desmet"),
    dict(lang="nl", subject="Rijbaan vol putten N9 gevaarlijk",
         body="Beste,\n\nDe N9 tussen Aalter en Maldegem ligt vol diepe putten. Ik heb in het voorjaar al een melding "
              "gedaan bij het Agentschap Wegen en Verkeer. Er is niets gebeurd en gisteren is mijn band gescheurd. "
              "Het is gevaarlijk voor fietsers.\n\nLuc Peeters",
         para_subject="putten N9 Aalter-Maldegem nog altijd niet hersteld",
         para_body="Geachte,\n\nOndanks mijn melding van dit voorjaar aan Wegen en Verkeer zijn de diepe putten op de "
                   "N9 tussen Aalter en Maldegem niet hersteld. Gisteren scheurde mijn band. Voor fietsers is dit "
                   "levensgevaarlijk.\n\nLuc Peeters",
         other_subject="Fietspad N9 onderbroken door werken",
         other_body="Beste,\n\nHet fietspad langs de N9 in Eeklo is al drie maanden onderbroken door werken zonder "
                    "omleiding. Kinderen moeten op de rijbaan fietsen.\n\nLuc Peeters"),
    dict(lang="nl", subject="Renovatiepremie: geen antwoord na 8 maanden",
         body="Geachte,\n\nIn juni vorig jaar heb ik de Mijn VerbouwPremie aangevraagd voor nieuwe ramen en "
              "dakisolatie. Acht maanden later heb ik nog geen beslissing. Op mijn mails krijg ik een automatisch "
              "antwoord. Ik heb een lening moeten aangaan om de aannemer te betalen.\n\nMet vriendelijke groeten,\nJohan Wuyts",
         para_subject="Mijn VerbouwPremie ramen en dak",
         para_body="Beste,\n\nMijn aanvraag voor de Mijn VerbouwPremie (ramen en dakisolatie), ingediend in juni vorig "
                   "jaar, is na acht maanden nog altijd niet beslist. Ik krijg alleen automatische antwoorden terwijl "
                   "ik een lening aanging voor de aannemer.\n\nJohan Wuyts",
         other_subject="Energielening geweigerd",
         other_body="Geachte,\n\nMijn aanvraag voor een renteloze energielening werd geweigerd omdat mijn inkomen te hoog "
                    "zou zijn. Men heeft het inkomen van mijn ex-partner meegeteld.\n\nJohan Wuyts"),
    dict(lang="nl", subject="Parkeerboete Gent onterecht",
         body="Beste,\n\nIk kreeg een parkeerboete in de Korenmarkt terwijl ik een geldig bewonersabonnement heb. "
              "Mijn bezwaar werd afgewezen zonder dat iemand naar mijn abonnement keek.\n\nEls De Smet",
         para_subject="bezwaar parkeerboete Korenmarkt",
         para_body="Goedendag,\n\nOndanks mijn geldig bewonersabonnement kreeg ik een parkeerboete op de Korenmarkt. "
                   "Niemand heeft mijn abonnement bekeken voor het bezwaar werd afgewezen.\n\nEls",
         other_subject="Afvalophaling niet gebeurd",
         other_body="Beste,\n\nAl drie weken wordt het restafval in onze straat niet opgehaald. De stad zegt dat de "
                    "ophaler aan zet is.\n\nEls De Smet"),
    dict(lang="nl", subject="Handicapbudget: persoonsvolgend budget",
         body="Geachte,\n\nMijn broer heeft een verstandelijke beperking en staat al vier jaar in prioriteitengroep 2 "
              "voor een persoonsvolgend budget. Het VAPH zegt dat er geen budget is. Zijn situatie thuis wordt "
              "onhoudbaar omdat onze ouders ouder worden.\n\nKatrien Wouters",
         para_subject="Wachten op persoonsvolgend budget VAPH",
         para_body="Beste,\n\nVier jaar staat mijn broer, die een verstandelijke beperking heeft, in "
                   "prioriteitengroep 2 zonder persoonsvolgend budget. Het VAPH heeft geen middelen, zegt men. Onze "
                   "ouders worden ouder en thuis gaat het niet meer.\n\nKatrien",
         other_subject="Hulpmiddelen rolstoel terugbetaling",
         other_body="Geachte,\n\nHet VAPH weigert de terugbetaling van een aangepaste rolstoel voor mijn broer omdat "
                    "de aanvraag te laat zou zijn ingediend.\n\nKatrien Wouters"),
    dict(lang="nl", subject="Rioolheffing aangerekend terwijl ik niet aangesloten ben",
         body="Beste,\n\nDe watermaatschappij rekent mij een saneringsbijdrage aan terwijl mijn woning niet op de "
              "riolering aangesloten is. Ik heb een eigen waterzuiveringsinstallatie. De VMM verwijst me door naar "
              "de watermaatschappij.\n\nFrank Hermans",
         para_subject="saneringsbijdrage niet verschuldigd",
         para_body="Geachte,\n\nMijn woning heeft een eigen waterzuivering en is niet aangesloten op de riolering. "
                   "Toch betaal ik een saneringsbijdrage aan de watermaatschappij. De VMM en de watermaatschappij "
                   "verwijzen naar elkaar.\n\nF. Hermans",
         other_subject="Geluidshinder van de fabriek",
         other_body="Beste,\n\nDe fabriek naast ons maakt 's nachts veel lawaai. De milieudienst zegt dat de VMM "
                    "bevoegd is, de VMM antwoordt niet.\n\nFrank Hermans"),
    dict(lang="nl", subject="Inschrijvingsrecht school broer en zus",
         body="Geachte,\n\nMijn jongste dochter werd niet ingeschreven in de school waar haar broer al zit, hoewel "
              "broers en zussen voorrang hebben. Het aanmeldingssysteem gaf haar een plaats in een school op 12 km. "
              "De school en het LOP verwijzen naar elkaar.\n\nNathalie Dubois",
         para_subject="Geen voorrang voor zus in school broer",
         para_body="Beste,\n\nOndanks de voorrang voor broers en zussen kreeg mijn jongste dochter geen plaats in de "
                   "school van haar broer, maar in een school op 12 kilometer. School en LOP schuiven het naar "
                   "elkaar door.\n\nNathalie",
         other_subject="Leerlingenvervoer buitengewoon onderwijs",
         other_body="Geachte,\n\nHet leerlingenvervoer voor mijn zoon in het buitengewoon onderwijs duurt elke dag "
                    "meer dan twee uur per rit.\n\nNathalie Dubois"),
    dict(lang="nl", subject="Kapvergunning bomen geweigerd",
         body="Beste,\n\nHet Agentschap Natuur en Bos weigert een vergunning om twee zieke essen in onze tuin te "
              "kappen. Een boomverzorger bevestigt dat ze kunnen omvallen op het huis. Wij vrezen voor de veiligheid "
              "van onze kinderen.\n\nGeert Van den Broeck",
         para_subject="zieke essen mogen niet gekapt worden",
         para_body="Geachte,\n\nTwee zieke essen in onze tuin dreigen op ons huis te vallen, zegt een boomverzorger. "
                   "Toch weigert Natuur en Bos de kapvergunning. Wij zijn ongerust voor onze kinderen.\n\nGeert",
         other_subject="Jachtvergunning buurman",
         other_body="Beste,\n\nDe buurman jaagt op het perceel naast onze tuin. Natuur en Bos reageert niet op onze "
                    "meldingen.\n\nGeert Van den Broeck"),
    dict(lang="nl", subject="Verkeersbelasting auto verkocht",
         body="Geachte,\n\nIk moet verkeersbelasting betalen voor een auto die ik in januari verkocht heb. De nummerplaat "
              "is geschrapt, het bewijs van de DIV heb ik opgestuurd. De Vlaamse Belastingdienst blijft "
              "aanmaningen sturen.\n\nRik Maes",
         para_subject="Aanmaning verkeersbelasting voor verkochte wagen",
         para_body="Beste,\n\nVoor een wagen die ik in januari verkocht (nummerplaat geschrapt, bewijs DIV verstuurd) "
                   "krijg ik nog altijd aanmaningen verkeersbelasting van de belastingdienst.\n\nRik",
         other_subject="Registratiebelasting woning",
         other_body="Geachte,\n\nBij de aankoop van onze enige woning werd het verlaagde tarief registratiebelasting "
                    "niet toegepast.\n\nRik Maes"),
    dict(lang="nl", subject="Bodemattest fout",
         body="Beste,\n\nHet bodemattest voor ons perceel vermeldt een vroegere benzinepomp die er nooit gestaan heeft. "
              "Daardoor gaat de verkoop van ons huis niet door. De OVAM antwoordt al twee maanden niet op onze "
              "vraag tot correctie.\n\nHilde Janssens",
         para_subject="verkoop huis geblokkeerd door fout bodemattest",
         para_body="Geachte,\n\nOp ons bodemattest staat ten onrechte een oude benzinepomp. De verkoop van ons huis is "
                   "daardoor geblokkeerd en de OVAM reageert al twee maanden niet op ons verzoek om het attest te "
                   "corrigeren.\n\nHilde Janssens",
         other_subject="Asbestinventaris",
         other_body="Beste,\n\nDe OVAM vraagt een nieuw asbestattest terwijl we er vorig jaar al een hebben laten "
                    "maken.\n\nHilde Janssens"),
    dict(lang="fr", subject="Plainte concernant le VDAB",
         body="Madame, Monsieur,\n\nDepuis janvier, le VDAB a suspendu mon accompagnement vers l'emploi sans "
              "explication. J'ai déjà écrit trois fois au VDAB, sans réponse. Je ne sais plus à qui m'adresser.\n\n"
              "Veuillez agréer mes salutations distinguées,\nMarie Dubois",
         para_subject="Accompagnement VDAB suspendu",
         para_body="Bonjour,\n\nMon accompagnement vers l'emploi au VDAB est suspendu depuis janvier, sans aucune "
                   "explication. Trois courriers au VDAB sont restés sans réponse.\n\nCordialement,\nMarie",
         other_subject="Formation refusée par le VDAB",
         other_body="Madame, Monsieur,\n\nLe VDAB refuse de financer ma formation de comptable parce que je parle "
                    "mal le néerlandais.\n\nMarie Dubois"),
    dict(lang="fr", subject="Amende De Lijn injustifiée",
         body="Madame, Monsieur,\n\nJ'ai reçu une amende de 107 euros dans le tram à Anvers alors que j'avais acheté "
              "un ticket par SMS. Le contrôleur n'a pas voulu regarder mon téléphone. De Lijn refuse d'annuler "
              "l'amende.\n\nCordialement,\nPhilippe Lambert",
         para_subject="contestation amende tram Anvers",
         para_body="Bonjour,\n\nDans le tram à Anvers, on m'a infligé une amende de 107 euros bien que j'avais un ticket "
                   "SMS valable. Le contrôleur a refusé de voir mon téléphone et De Lijn ne veut pas annuler.\n\nP. Lambert",
         other_subject="Arrêt de bus supprimé",
         other_body="Madame, Monsieur,\n\nL'arrêt de bus près de chez moi à Zaventem a été supprimé sans "
                    "concertation.\n\nPhilippe Lambert"),
    dict(lang="fr", subject="Prime au logement refusée",
         body="Madame, Monsieur,\n\nMa demande de prime au loyer a été refusée parce que mon dossier serait incomplet. "
              "J'ai pourtant envoyé le bail et l'attestation de revenus par le guichet électronique. Wonen in "
              "Vlaanderen dit n'avoir rien reçu.\n\nIsabelle Martin",
         para_subject="Refus prime loyer - documents envoyés",
         para_body="Bonjour,\n\nWonen in Vlaanderen refuse ma prime au loyer pour dossier incomplet alors que j'ai "
                   "transmis le bail et l'attestation de revenus via le guichet électronique.\n\nIsabelle",
         other_subject="Logement social: liste d'attente",
         other_body="Madame, Monsieur,\n\nJe suis sur la liste d'attente pour un logement social depuis sept ans et "
                    "on m'a rayée sans prévenir.\n\nIsabelle Martin"),
    dict(lang="fr", subject="Allocations familiales non payées",
         body="Madame, Monsieur,\n\nDepuis la naissance de notre fils en mars, nous ne recevons pas le Groeipakket. "
              "La caisse d'allocations dit attendre Opgroeien, Opgroeien dit attendre la caisse.\n\nSophie Leroy",
         para_subject="Groeipakket toujours pas versé",
         para_body="Bonjour,\n\nNotre fils est né en mars et le Groeipakket n'a toujours pas été versé. La caisse et "
                   "Opgroeien se renvoient la balle.\n\nSophie",
         other_subject="Place en crèche",
         other_body="Madame, Monsieur,\n\nLa crèche refuse notre fille faute de priorité alors que nous travaillons "
                    "tous les deux.\n\nSophie Leroy"),
    dict(lang="fr", subject="Précompte immobilier payé deux fois",
         body="Madame, Monsieur,\n\nJ'ai payé deux fois le précompte immobilier 2025, par domiciliation et par "
              "virement. Le Vlaamse Belastingdienst reconnaît l'erreur mais ne rembourse pas les 980 euros depuis "
              "quatre mois.\n\nJean Dupont",
         para_subject="remboursement précompte immobilier",
         para_body="Bonjour,\n\nMon précompte immobilier 2025 a été payé en double (domiciliation et virement). "
                   "L'administration fiscale flamande le reconnaît mais les 980 euros ne sont toujours pas "
                   "remboursés après quatre mois.\n\nJ. Dupont",
         other_subject="Droits de succession",
         other_body="Madame, Monsieur,\n\nLe Vlaamse Belastingdienst a surévalué la maison de ma mère dans la "
                    "déclaration de succession.\n\nJean Dupont"),
    dict(lang="nl", subject="Klacht over behandeling bij het loket",
         body="Geachte,\n\nBij het loket van het Agentschap Innoveren en Ondernemen werd ik onbeleefd behandeld toen "
              "ik vroeg naar mijn hinderpremie. De medewerker weigerde mijn documenten aan te nemen en zei dat ik "
              "alles online moest doen, terwijl ik geen computer heb.\n\nJozef Peeters",
         para_subject="Onbeleefd behandeld VLAIO loket hinderpremie",
         para_body="Beste,\n\nToen ik aan het loket van VLAIO vroeg naar mijn hinderpremie, werd ik onbeleefd "
                   "behandeld. Mijn papieren werden geweigerd: ik moest alles online doen, maar ik heb geen "
                   "computer.\n\nJ. Peeters",
         other_subject="Hinderpremie bedrag te laag",
         other_body="Geachte,\n\nDe hinderpremie die ik kreeg is veel lager dan het bedrag op de website.\n\nJozef Peeters"),
]
