"""Populations for the identity generalisation benchmark, unlike what `cdp gen` makes.

usage: populations.py --population NAME [--persons N] [--seed S] --out DIR

Writes the population's source files under DIR (each source with headers and formats of
its own) and DIR/truth.csv (source,record_id,person_id: the cdp source name the
pipeline gives the file, the value of the column mapped to the entity key, the person).
Standard library only; the same arguments give the same bytes.

Populations (bench/populations/<name>_{defaults,best}.toml read them):
  households       US people, about half living with relatives who share the address, a
                   landline and sometimes a family mailbox; twins; moves, married names,
                   nicknames, typos, dropped letters, case; CRM, web shop and loyalty file.
  names_addresses  US people seen through names, street, city, postcode and (often) birth
                   date only: voter roll, clinic and magazine subscriptions.
  two_sources      a members file and a vendor file, each one record a person, about 60%
                   of people in both, different headers and date formats, typos.
  non_us           British, German, French, Spanish and Polish people: accents, umlauts,
                   double surnames, national and international phone formats, foreign
                   postcodes and streets, a country column; a pan-European shop, a German
                   CRM and a French loyalty file.

The names, addresses and error model here are this file's own, written without reference
to cdp's generator: the point is data cdp was not built around. bench/identity_generalise.sh
tunes nothing; the best configurations and Splink's threshold were chosen on seed 1 (the
development seed) and the figures it reports are on seed 2 (the evaluation seed).
"""

import argparse
import csv
import datetime as dt
import os
import random
import unicodedata

# ---------------------------------------------------------------------------------------
# Names. (formal, [nicknames]) for given names; surnames with rough weights (commoner first).

US_MALE = [
    ("Robert", ["Bob", "Rob", "Bobby"]), ("William", ["Bill", "Will", "Billy"]),
    ("James", ["Jim", "Jimmy"]), ("Michael", ["Mike"]), ("Richard", ["Rick", "Dick"]),
    ("Thomas", ["Tom", "Tommy"]), ("Joseph", ["Joe", "Joey"]), ("Daniel", ["Dan", "Danny"]),
    ("Christopher", ["Chris"]), ("Anthony", ["Tony"]), ("Samuel", ["Sam"]),
    ("Benjamin", ["Ben"]), ("Alexander", ["Alex"]), ("Nicholas", ["Nick"]),
    ("Matthew", ["Matt"]), ("Andrew", ["Andy", "Drew"]), ("Edward", ["Ed", "Eddie", "Ted"]),
    ("Steven", ["Steve"]), ("Timothy", ["Tim"]), ("Gregory", ["Greg"]),
    ("Jonathan", ["Jon"]), ("Zachary", ["Zach"]), ("Theodore", ["Theo", "Ted"]),
    ("Frederick", ["Fred"]), ("Lawrence", ["Larry"]), ("Raymond", ["Ray"]),
    ("Ronald", ["Ron"]), ("Donald", ["Don"]), ("Gerald", ["Jerry"]), ("Kenneth", ["Ken"]),
    ("David", ["Dave"]), ("John", ["Jack", "Johnny"]), ("Charles", ["Charlie", "Chuck"]),
    ("Noah", []), ("Liam", []), ("Ethan", []), ("Ryan", []), ("Kevin", []), ("Brian", []),
    ("Jason", []), ("Eric", []), ("Adam", []), ("Aaron", []), ("Carlos", []), ("Juan", []),
    ("Luis", []), ("Omar", []), ("Tyler", []), ("Dylan", []), ("Marcus", []), ("Jacob", ["Jake"]),
    ("Joshua", ["Josh"]), ("Nathan", ["Nate"]), ("Patrick", ["Pat"]), ("Peter", ["Pete"]),
]
US_FEMALE = [
    ("Elizabeth", ["Liz", "Beth", "Betty", "Eliza"]), ("Katherine", ["Kate", "Katie", "Kathy"]),
    ("Margaret", ["Maggie", "Peggy", "Meg"]), ("Jennifer", ["Jen", "Jenny"]),
    ("Patricia", ["Pat", "Patty", "Trish"]), ("Susan", ["Sue", "Susie"]),
    ("Deborah", ["Deb", "Debbie"]), ("Rebecca", ["Becky"]), ("Victoria", ["Vicky", "Tori"]),
    ("Jessica", ["Jess"]), ("Abigail", ["Abby"]), ("Christina", ["Tina", "Chris"]),
    ("Kimberly", ["Kim"]), ("Pamela", ["Pam"]), ("Cynthia", ["Cindy"]), ("Dorothy", ["Dot"]),
    ("Judith", ["Judy"]), ("Barbara", ["Barb"]), ("Sandra", ["Sandy"]), ("Amanda", ["Mandy"]),
    ("Melissa", ["Missy"]), ("Samantha", ["Sam"]), ("Alexandra", ["Alex", "Lexi"]),
    ("Emily", []), ("Sarah", []), ("Laura", []), ("Maria", []), ("Olivia", []),
    ("Sophia", []), ("Emma", []), ("Grace", []), ("Hannah", []), ("Chloe", []), ("Mei", []),
    ("Priya", []), ("Aisha", []), ("Ashley", []), ("Megan", []), ("Rachel", []),
    ("Nicole", []), ("Lauren", []), ("Natalie", []), ("Ava", []), ("Isabella", ["Bella"]),
    ("Madison", []), ("Brianna", []), ("Ana", []), ("Lucia", []), ("Carmen", []),
]
US_SURNAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
    "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson "
    "White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott "
    "Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell "
    "Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes "
    "Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson "
    "Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood "
    "James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers "
    "Long Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman Butler "
    "Henderson Barnes Gonzales Fisher Vasquez Simmons Romero Jordan Patterson Alexander "
    "Hamilton Graham Reynolds Griffin Wallace Moreno West Cole Hayes Bryant Herrera Gibson "
    "Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens Harrison Fernandez "
    "McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker Guzman "
    "Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon "
    "Munoz Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox "
    "Warren Mills Meyer Rice Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver "
    "Ryan Gardner Payne Grant Dunn Kelley Spencer Hawkins Arnold Pierce Vazquez Hansen "
    "Peters Santos Hart Bradley Knight Elliott Cunningham Duncan Armstrong Hudson Carroll "
    "Lane Riley Andrews Alvarado Ray Delgado Berry Perkins Hoffman Johnston Matthews Pena "
    "Richards Contreras Willis Carpenter Lawrence Sandoval O'Brien O'Connor McCarthy "
    "Kowalski Novak Schneider Nakamura Yamamoto Okafor Adeyemi Haddad Cohen Goldberg"
).split()

US_STREET_NAMES = (
    "Oak Maple Cedar Pine Elm Washington Lake Hill Park Main Church Mill River Sunset "
    "Highland Lincoln Jefferson Madison Franklin Walnut Chestnut Willow Spring Ridge "
    "Meadow Forest Valley Cherry Jackson Adams Center Union Market Broad Front Water "
    "Prospect Pleasant Grove Orchard Dogwood Magnolia Sycamore Hickory Laurel Birch "
    "Aspen Juniper Lakeview Fairview Riverside Hillcrest Woodland Greenwood Kingston "
    "Beacon Harbor Bay Canyon Mesa Vista Summit Colonial Heritage Liberty Victory"
).split()
US_SUFFIXES = [("Street", ["St", "St.", "Str"]), ("Avenue", ["Ave", "Ave.", "Av"]),
               ("Road", ["Rd", "Rd."]), ("Lane", ["Ln"]), ("Drive", ["Dr", "Dr."]),
               ("Court", ["Ct"]), ("Boulevard", ["Blvd"]), ("Place", ["Pl"]),
               ("Way", []), ("Terrace", ["Ter"]), ("Circle", ["Cir"])]
# city, state, area codes, zip prefixes (3 digits: each city draws zips prefix + 2 digits)
US_CITIES = [
    ("Boston", "MA", ["617", "857"], ["021"]), ("Springfield", "MA", ["413"], ["011"]),
    ("Hartford", "CT", ["860"], ["061"]), ("Newark", "NJ", ["973"], ["071"]),
    ("Brooklyn", "NY", ["718", "347"], ["112"]), ("Albany", "NY", ["518"], ["122"]),
    ("Philadelphia", "PA", ["215", "267"], ["191"]), ("Pittsburgh", "PA", ["412"], ["152"]),
    ("Baltimore", "MD", ["410", "443"], ["212"]), ("Richmond", "VA", ["804"], ["232"]),
    ("Charlotte", "NC", ["704", "980"], ["282"]), ("Atlanta", "GA", ["404", "678"], ["303"]),
    ("Miami", "FL", ["305", "786"], ["331"]), ("Tampa", "FL", ["813"], ["336"]),
    ("Nashville", "TN", ["615"], ["372"]), ("Columbus", "OH", ["614"], ["432"]),
    ("Cleveland", "OH", ["216"], ["441"]), ("Detroit", "MI", ["313"], ["482"]),
    ("Chicago", "IL", ["312", "773"], ["606"]), ("Milwaukee", "WI", ["414"], ["532"]),
    ("Minneapolis", "MN", ["612"], ["554"]), ("St. Louis", "MO", ["314"], ["631"]),
    ("Kansas City", "MO", ["816"], ["641"]), ("Omaha", "NE", ["402"], ["681"]),
    ("Dallas", "TX", ["214", "972"], ["752"]), ("Houston", "TX", ["713", "832"], ["770"]),
    ("Austin", "TX", ["512"], ["787"]), ("Denver", "CO", ["303", "720"], ["802"]),
    ("Phoenix", "AZ", ["602", "480"], ["850"]), ("Salt Lake City", "UT", ["801"], ["841"]),
    ("Las Vegas", "NV", ["702"], ["891"]), ("Los Angeles", "CA", ["213", "323"], ["900"]),
    ("San Diego", "CA", ["619", "858"], ["921"]), ("San Jose", "CA", ["408"], ["951"]),
    ("Sacramento", "CA", ["916"], ["958"]), ("Portland", "OR", ["503", "971"], ["972"]),
    ("Seattle", "WA", ["206"], ["981"]), ("Spokane", "WA", ["509"], ["992"]),
]
US_MAIL = ["gmail.com", "gmail.com", "gmail.com", "yahoo.com", "yahoo.com", "outlook.com",
           "hotmail.com", "icloud.com", "aol.com", "comcast.net", "att.net", "proton.me",
           "verizon.net", "msn.com"]

# Europe ---------------------------------------------------------------------------------
EU_NAMES = {
    "GB": {
        "male": [("William", ["Will", "Bill"]), ("James", ["Jim", "Jamie"]),
                 ("Thomas", ["Tom"]), ("Edward", ["Ed", "Ted"]), ("Alexander", ["Alex"]),
                 ("Oliver", ["Olly"]), ("Harry", []), ("George", []), ("Jack", []),
                 ("Charlie", []), ("Rhys", []), ("Gareth", []), ("Dafydd", []),
                 ("Callum", []), ("Hamish", []), ("Seán", []), ("Mohammed", []),
                 ("Daniel", ["Dan"]), ("Matthew", ["Matt"]), ("Christopher", ["Chris"])],
        "female": [("Elizabeth", ["Liz", "Beth"]), ("Margaret", ["Maggie", "Peggy"]),
                   ("Catherine", ["Kate", "Cathy"]), ("Victoria", ["Vicky"]),
                   ("Rebecca", ["Becky"]), ("Charlotte", ["Lottie"]), ("Olivia", []),
                   ("Amelia", []), ("Isla", []), ("Emily", []), ("Sophie", []),
                   ("Siobhán", []), ("Niamh", []), ("Aoife", []), ("Eilidh", []),
                   ("Fiona", []), ("Priya", []), ("Zoë", [])],
        "last": ("Smith Jones Taylor Brown Williams Wilson Johnson Davies Robinson Wright "
                 "Thompson Evans Walker White Roberts Green Hall Wood Jackson Clarke "
                 "O'Neill McDonald MacLeod Fitzgerald Khan Patel Singh Ahmed Hughes "
                 "Edwards Lewis Morgan Owen Campbell Stewart Murray Kelly Byrne "
                 "Ó Briain Fforde-Smythe Llewellyn ap Rhys").split(" "),
    },
    "DE": {
        "male": [("Johann", ["Hans"]), ("Wilhelm", ["Willi"]), ("Friedrich", ["Fritz"]),
                 ("Maximilian", ["Max"]), ("Lukas", []), ("Leon", []), ("Jonas", []),
                 ("Felix", []), ("Jürgen", []), ("Jörg", []), ("Günter", []), ("Uwe", []),
                 ("Björn", []), ("Sören", []), ("Stefan", []), ("Ralf", []),
                 ("Wolfgang", ["Wolf"]), ("Matthias", ["Matze"]), ("Andreas", ["Andi"])],
        "female": [("Katharina", ["Kathi", "Katja"]), ("Elisabeth", ["Lisa", "Liesel"]),
                   ("Margarethe", ["Grete"]), ("Ursula", ["Uschi"]), ("Anna", []),
                   ("Lena", []), ("Sophie", []), ("Jana", []), ("Hannelore", []),
                   ("Dörte", []), ("Bärbel", []), ("Maike", []), ("Anja", []),
                   ("Jülide", []), ("Susanne", ["Susi"]), ("Christine", ["Tine"])],
        "last": ("Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz "
                 "Hoffmann Schäfer Koch Bauer Richter Klein Wolf Schröder Neumann Schwarz "
                 "Zimmermann Braun Krüger Hofmann Hartmann Lange Schmitt Werner Schmitz "
                 "Krause Meier Lehmann Köhler Weiß Groß Jäger Böhm Günther Vogel Fuchs "
                 "Öztürk Yılmaz Kaya Müller-Lüdenscheidt von Bülow").split(" "),
    },
    "FR": {
        "male": [("Jean", []), ("Pierre", []), ("Jean-Pierre", []), ("Jean-Luc", []),
                 ("François", []), ("Théo", []), ("Mathéo", []), ("Clément", []),
                 ("Jérôme", []), ("Sébastien", []), ("Stéphane", []),
                 ("Frédéric", ["Fred"]), ("Raphaël", []), ("Gaël", []), ("Benoît", []),
                 ("Loïc", []), ("Nicolas", ["Nico"]), ("Hugo", []), ("Louis", [])],
        "female": [("Marie", []), ("Anne-Sophie", []), ("Marie-Claire", []),
                   ("Françoise", []), ("Hélène", []), ("Éloïse", []), ("Zoé", []),
                   ("Chloé", []), ("Noémie", []), ("Léa", []), ("Anaïs", []),
                   ("Cécile", []), ("Aurélie", []), ("Maëlle", []), ("Camille", []),
                   ("Manon", []), ("Élodie", [])],
        "last": ("Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau "
                 "Simon Laurent Lefèvre Michel Garcia David Bertrand Roux Vincent Fournier "
                 "Morel Girard André Lefebvre Mercier Dupont Lambert Bonnet François "
                 "Legrand Garnier Faure Rousseau Blanc Guérin Hénin Béranger Le Gall "
                 "Le Goff de la Fontaine Dupont-Aignan N'Diaye").split(" "),
    },
    "ES": {
        "male": [("José", ["Pepe"]), ("Francisco", ["Paco"]), ("Ignacio", ["Nacho"]),
                 ("José Luis", []), ("Juan Carlos", []), ("Ángel", []), ("Jesús", []),
                 ("Javier", []), ("Álvaro", []), ("Íñigo", []), ("Sergio", [])],
        "female": [("María", []), ("María José", []), ("Dolores", ["Lola"]),
                   ("Concepción", ["Concha"]), ("Pilar", ["Pili"]), ("Sofía", []),
                   ("Lucía", []), ("Martina", []), ("Begoña", []), ("Nuria", [])],
        "last": ("García Fernández González Rodríguez López Martínez Sánchez Pérez Gómez "
                 "Martín Jiménez Ruiz Hernández Díaz Moreno Muñoz Álvarez Romero Alonso "
                 "Gutiérrez Navarro Torres Domínguez Vázquez Ramos Gil Serrano Blanco "
                 "Suárez Molina Castro Ortega Rubio Núñez Ibáñez").split(" "),
    },
    "PL": {
        "male": [("Łukasz", []), ("Michał", []), ("Paweł", []), ("Piotr", []),
                 ("Krzysztof", []), ("Tomasz", []), ("Jakub", ["Kuba"]), ("Mateusz", []),
                 ("Wojciech", ["Wojtek"]), ("Grzegorz", ["Grzesiek"])],
        "female": [("Małgorzata", ["Gosia"]), ("Agnieszka", []), ("Katarzyna", ["Kasia"]),
                   ("Anna", ["Ania"]), ("Magdalena", ["Magda"]), ("Joanna", ["Asia"]),
                   ("Aleksandra", ["Ola"]), ("Zofia", ["Zosia"]), ("Żaneta", []),
                   ("Bożena", [])],
        # -ski/-cki/-dzki names take -ska/-cka/-dzka for women.
        "last": ("Nowak Kowalski Wiśniewski Wójcik Kowalczyk Kamiński Lewandowski "
                 "Zieliński Szymański Woźniak Dąbrowski Kozłowski Jankowski Mazur "
                 "Wojciechowski Kwiatkowski Krawczyk Piotrowski Grabowski Król "
                 "Wieczorek Jabłoński Wróbel Zając").split(" "),
    },
}
EU_CITIES = {
    # city, postcode maker, landline area codes (national, without the trunk 0)
    "GB": [("London", ["SW1A", "SW11", "E1", "E14", "N1", "NW3", "SE15", "W2", "WC2H"], ["20"]),
           ("Manchester", ["M1", "M14", "M20"], ["161"]), ("Birmingham", ["B1", "B15"], ["121"]),
           ("Leeds", ["LS1", "LS6"], ["113"]), ("Glasgow", ["G1", "G12"], ["141"]),
           ("Bristol", ["BS1", "BS8"], ["117"]), ("Edinburgh", ["EH1", "EH9"], ["131"]),
           ("Cardiff", ["CF10", "CF24"], ["29"])],
    "DE": [("Berlin", ["101", "104", "107", "120", "130"], ["30"]),
           ("München", ["803", "806", "809"], ["89"]), ("Hamburg", ["200", "203", "221"], ["40"]),
           ("Köln", ["506", "509"], ["221"]), ("Frankfurt am Main", ["603", "605"], ["69"]),
           ("Stuttgart", ["701", "703"], ["711"]), ("Düsseldorf", ["402", "404"], ["211"]),
           ("Leipzig", ["041", "043"], ["341"]), ("Dresden", ["010", "013"], ["351"])],
    "FR": [("Paris", ["750"], ["1"]), ("Lyon", ["690"], ["4"]), ("Marseille", ["130"], ["4"]),
           ("Toulouse", ["310"], ["5"]), ("Nice", ["060"], ["4"]), ("Bordeaux", ["330"], ["5"]),
           ("Lille", ["590"], ["3"]), ("Strasbourg", ["670"], ["3"])],
    "ES": [("Madrid", ["280"], ["91"]), ("Barcelona", ["080"], ["93"]),
           ("Sevilla", ["410"], ["95"]), ("Valencia", ["460"], ["96"])],
    "PL": [("Warszawa", ["00", "01", "02"], ["22"]), ("Kraków", ["30", "31"], ["12"]),
           ("Gdańsk", ["80"], ["58"]), ("Wrocław", ["50", "53"], ["71"])],
}
EU_CITY_ALIASES = {"München": "Munich", "Köln": "Cologne", "Warszawa": "Warsaw",
                   "Kraków": "Krakow", "Sevilla": "Seville", "Gdańsk": "Gdansk",
                   "Düsseldorf": "Duesseldorf", "Frankfurt am Main": "Frankfurt"}
EU_STREETS = {
    "GB": (["High", "Station", "Church", "Victoria", "Mill", "Park", "Queen's", "King's",
            "Albert", "Manor", "Grange", "St John's", "Windsor", "Abbey", "Bridge"],
           ["Road", "Street", "Lane", "Avenue", "Close", "Gardens", "Crescent", "Terrace", "Mews"]),
    "DE": (["Haupt", "Bahnhof", "Schul", "Garten", "Kirch", "Linden", "Berg", "Wald",
            "Goethe", "Schiller", "Mozart", "Friedrich-Ebert-", "Müller", "Rosen", "Birken"],
           ["straße", "weg", "allee", "platz", "ring", "gasse"]),
    "FR": (["de la Paix", "Victor Hugo", "Saint-Michel", "de la République", "Jean Jaurès",
            "des Lilas", "du Général de Gaulle", "Pasteur", "de l'Église", "Émile Zola",
            "des Écoles", "du Moulin", "Voltaire", "de Verdun", "Gambetta"],
           ["rue", "avenue", "boulevard", "place", "allée", "impasse", "chemin"]),
    "ES": (["Mayor", "de la Constitución", "de Alcalá", "Gran Vía", "del Sol", "de Cervantes",
            "de San Juan", "Real", "de la Paz", "del Carmen"],
           ["Calle", "Avenida", "Plaza", "Paseo", "Camino"]),
    "PL": (["Marszałkowska", "Piękna", "Długa", "Krakowska", "Mickiewicza", "Słowackiego",
            "Kościuszki", "Wolności", "Ogrodowa", "Łąkowa"],
           ["ul.", "al.", "pl."]),
}
EU_MAIL = {
    "GB": ["gmail.com", "btinternet.com", "yahoo.co.uk", "hotmail.co.uk", "outlook.com", "sky.com"],
    "DE": ["gmail.com", "web.de", "gmx.de", "t-online.de", "gmx.net", "posteo.de"],
    "FR": ["gmail.com", "orange.fr", "free.fr", "laposte.net", "hotmail.fr", "sfr.fr"],
    "ES": ["gmail.com", "hotmail.es", "telefonica.net", "yahoo.es"],
    "PL": ["gmail.com", "wp.pl", "onet.pl", "o2.pl", "interia.pl"],
}
EU_COUNTRY_NAMES = {
    "GB": ["GB", "United Kingdom", "UK", "England", "Great Britain"],
    "DE": ["DE", "Germany", "Deutschland"],
    "FR": ["FR", "France"],
    "ES": ["ES", "Spain", "España"],
    "PL": ["PL", "Poland", "Polska"],
}
CALLING = {"GB": "44", "DE": "49", "FR": "33", "ES": "34", "PL": "48"}
QWERTY_NEAR = {c: n for c, n in zip(
    "qwertyuiopasdfghjklzxcvbnm",
    ["wa", "qes", "wrd", "etf", "ryg", "tuh", "yij", "uok", "ipl", "ol", "qsz", "awdx",
     "sefc", "drgv", "fthb", "gyjn", "hukm", "jil", "kop", "xas", "zcs", "xvd", "cbf",
     "vnh", "bmj", "nk"])}


def ascii_fold(s):
    """What a system without accents makes of a name: ß ss, Ł L, é e, ö o."""
    s = s.replace("ß", "ss").replace("Ł", "L").replace("ł", "l").replace("ı", "i")
    s = s.replace("Ø", "O").replace("ø", "o").replace("Æ", "AE").replace("æ", "ae")
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def german_fold(s):
    """The German transliteration of umlauts: Müller Mueller, Weiß Weiss."""
    for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("Ä", "Ae"), ("Ö", "Oe"),
                 ("Ü", "Ue"), ("ß", "ss")):
        s = s.replace(a, b)
    return ascii_fold(s)


def weighted_choice(rng, items, power=1.0):
    """Zipf-like: the i-th item has weight 1/(i+1)**power."""
    weights = [1.0 / (i + 1) ** power for i in range(len(items))]
    return rng.choices(items, weights=weights)[0]


# ---------------------------------------------------------------------------------------
# Errors a record picks up on its way into a source.

def typo(rng, s):
    """One slip: a neighbouring key, a dropped, doubled or swapped letter."""
    if len(s) < 3:
        return s
    i = rng.randrange(1, len(s) - 1)
    kind = rng.random()
    c = s[i]
    if kind < 0.35 and c.lower() in QWERTY_NEAR:
        r = rng.choice(QWERTY_NEAR[c.lower()])
        return s[:i] + (r.upper() if c.isupper() else r) + s[i + 1:]
    if kind < 0.6:
        return s[:i] + s[i + 1:]
    if kind < 0.8:
        return s[:i] + c + s[i:]
    return s[:i - 1] + s[i] + s[i - 1] + s[i + 1:]


def casing(rng, s):
    r = rng.random()
    if r < 0.5:
        return s.upper()
    if r < 0.8:
        return s.lower()
    return " " + s + " "  # stray spaces a form kept


def render_date(d, fmt):
    return d.strftime(fmt)


def date_slip(rng, d):
    """A birth date typed wrong: day and month swapped, a digit of the year, a day off."""
    r = rng.random()
    if r < 0.4 and d.day <= 12 and d.day != d.month:
        return d.replace(day=d.month, month=d.day)
    if r < 0.7:
        y = d.year + rng.choice([-10, -1, 1, 10])
        try:
            return d.replace(year=y)
        except ValueError:
            return d
    return d + dt.timedelta(days=rng.choice([-1, 1]))


# ---------------------------------------------------------------------------------------
# People and households.

class World:
    def __init__(self, rng, region):
        self.rng = rng
        self.region = region  # "US" or "EU"
        self.next_person = 0
        self.used_emails = set()
        self.used_phones = set()

    # -- names ---------------------------------------------------------------------------
    def given(self, country, sex):
        if country == "US":
            pool = US_MALE if sex == "M" else US_FEMALE
        else:
            pool = EU_NAMES[country]["male" if sex == "M" else "female"]
        return weighted_choice(self.rng, pool, 0.6)

    def surname(self, country):
        if country == "US":
            return weighted_choice(self.rng, US_SURNAMES, 0.9)
        last = weighted_choice(self.rng, EU_NAMES[country]["last"], 0.8)
        if country == "ES":  # paternal and maternal surnames
            second = weighted_choice(self.rng, EU_NAMES["ES"]["last"], 0.8)
            if second != last:
                last = f"{last} {second}"
        return last

    @staticmethod
    def feminine(country, last):
        if country == "PL":
            for a, b in (("ski", "ska"), ("cki", "cka"), ("dzki", "dzka")):
                if last.endswith(a):
                    return last[: -len(a)] + b
        return last

    # -- places --------------------------------------------------------------------------
    def address(self, country):
        rng = self.rng
        if country == "US":
            city, state, areas, zips = rng.choice(US_CITIES)
            postcode = rng.choice(zips) + f"{rng.randrange(100):02d}"
            suffix = rng.choice(US_SUFFIXES)
            street = f"{rng.randrange(1, 9900)} {rng.choice(US_STREET_NAMES)} {suffix[0]}"
            unit = f"Apt {rng.randrange(1, 40)}{rng.choice(['', '', 'A', 'B'])}" if rng.random() < 0.2 else ""
            return {"street": street, "suffix": suffix, "unit": unit, "city": city,
                    "state": state, "postcode": postcode, "country": "US", "areas": areas}
        city, prefixes, areas = rng.choice(EU_CITIES[country])
        pre = rng.choice(prefixes)
        if country == "GB":
            postcode = f"{pre} {rng.randrange(1, 10)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
        elif country == "PL":
            postcode = f"{pre}-{rng.randrange(1000):03d}"
        elif country == "FR":
            postcode = pre + f"{rng.randrange(1, 21):02d}" if pre in ("750", "690", "130") else pre + "00"
        else:
            postcode = pre + f"{rng.randrange(100):02d}"
        names, kinds = EU_STREETS[country]
        name, kind, n = rng.choice(names), rng.choice(kinds), rng.randrange(1, 120)
        if country == "GB":
            street = f"{n} {name} {kind}"
        elif country == "DE":
            if name.endswith("-"):  # Friedrich-Ebert-Straße
                street = f"{name}{kind.capitalize()} {n}"
            else:
                street = f"{name}{kind} {n}"
            street += rng.choice(["", "", "", "a", "b"])
        elif country == "FR":
            bis = rng.choice(["", "", "", "", " bis", " ter"])
            street = f"{n}{bis} {kind} {name}"
        elif country == "ES":
            street = f"{kind} {name} {n}, {rng.randrange(1, 9)}º {rng.choice('ABCD')}"
        else:
            street = f"{kind} {name} {n}" + (f"/{rng.randrange(1, 60)}" if rng.random() < 0.6 else "")
        return {"street": street, "suffix": None, "unit": "", "city": city, "state": "",
                "postcode": postcode, "country": country, "areas": areas}

    # -- contact -------------------------------------------------------------------------
    def phone(self, country, areas, mobile):
        """A unique phone number as (country, national significant number)."""
        rng = self.rng
        while True:
            if country == "US":
                area = rng.choice(areas) if not mobile or rng.random() < 0.7 else rng.choice(rng.choice(US_CITIES)[2])
                nsn = f"{area}{rng.randrange(2, 10)}{rng.randrange(100):02d}{rng.randrange(10000):04d}"
                if nsn[4:6] == "11":
                    continue
            elif country == "GB":
                # Subscriber numbers start where Ofcom allocates them (020 3/7/8, 029 2, 0161 2-4).
                lead = {"20": "378", "29": "2"}.get(areas[0], "234")
                nsn = f"7{rng.choice('45789')}{rng.randrange(1, 10)}{rng.randrange(10**7):07d}" if mobile else \
                    (f"{areas[0]}{rng.choice(lead)}{rng.randrange(10**7):07d}"[:10])
            elif country == "DE":
                nsn = f"15{rng.choice('12579')}{rng.randrange(10**8):08d}" if mobile else \
                    f"{areas[0]}{rng.randrange(2, 10)}{rng.randrange(10**6):06d}"
            elif country == "FR":
                nsn = (f"6{rng.choice('0124578')}{rng.randrange(10**7):07d}" if rng.random() < 0.7 else
                       f"7{rng.randrange(3, 10)}{rng.randrange(10**7):07d}") if mobile else \
                    f"{areas[0]}{rng.choice('1256789')}{rng.randrange(10**7):07d}"
            elif country == "ES":
                nsn = f"6{rng.randrange(10**8):08d}" if mobile else f"{areas[0]}{rng.randrange(10**7):07d}"
            else:
                nsn = f"{rng.choice(['50', '51', '53', '57', '60', '66', '69', '72', '78', '79', '88'])}{rng.randrange(10**7):07d}" if mobile else \
                    f"{areas[0]}{rng.randrange(10**7):07d}"
            if (country, nsn) not in self.used_phones:
                self.used_phones.add((country, nsn))
                return (country, nsn)

    def email(self, first, last, country, family=False):
        rng = self.rng
        f = ascii_fold(first).lower().replace(" ", "").replace("-", "").replace("'", "")
        l = ascii_fold(last.split(" ")[0] if country == "ES" else last).lower().replace(" ", "").replace("-", "").replace("'", "")
        domains = US_MAIL if country == "US" else EU_MAIL[country]
        for attempt in range(50):
            if family:
                local = rng.choice([f"{l}family", f"the{l}s", f"{l}.household", f"{l}home", f"team{l}"])
            else:
                local = rng.choice([f"{f}.{l}", f"{f}{l}", f"{f[0]}{l}", f"{f}.{l}{rng.randrange(1, 99)}",
                                    f"{l}.{f}", f"{f}{rng.randrange(60, 99)}", f"{f}_{l}"])
            if attempt > 5:
                local += str(rng.randrange(100, 999))
            e = f"{local}@{rng.choice(domains)}"
            # Gmail delivers jane.doe@ and janedoe@ to one mailbox: two people never share it.
            mailbox = local.replace(".", "") + "@gmail.com" if e.endswith("@gmail.com") else e
            if mailbox not in self.used_emails:
                self.used_emails.add(mailbox)
                return e
        raise RuntimeError("no free email")

    # -- persons -------------------------------------------------------------------------
    def person(self, country, sex, first, last, dob, hh, addr):
        self.next_person += 1
        return {"id": f"P{self.next_person:06d}", "country": country, "sex": sex,
                "first": first, "last": last, "maiden": None, "dob": dob, "hh": hh,
                "addr": addr, "old_addr": None, "emails": [], "mobile": None,
                "landline": None, "family_email": None}

    def birth(self, lo_age, hi_age):
        today = dt.date(2026, 6, 1)
        return today - dt.timedelta(days=self.rng.randrange(lo_age * 365, hi_age * 365))

    def household(self, hh_id, size, country):
        """Persons of one household: a couple, their adult children (twins sometimes),
        or siblings; they share the address and the landline, sometimes a mailbox."""
        rng = self.rng
        addr = self.address(country)
        last = self.surname(country)
        people = []
        if size == 1:
            sex = rng.choice("MF")
            g, _ = self.given(country, sex)
            ln = self.feminine(country, last) if sex == "F" else last
            people.append(self.person(country, sex, g, ln, self.birth(19, 85), hh_id, addr))
        else:
            kind = rng.random()
            if kind < 0.8:  # a couple, and children
                age = rng.randrange(28, 75)
                m = self.person(country, "M", self.given(country, "M")[0], last,
                                self.birth(age - 3, age + 3), hh_id, addr)
                wife_last = self.feminine(country, last)
                w = self.person(country, "F", self.given(country, "F")[0], wife_last,
                                self.birth(age - 4, age + 2), hh_id, addr)
                if rng.random() < 0.15:  # kept her own name
                    w["last"] = self.feminine(country, self.surname(country))
                elif rng.random() < 0.5 and country != "ES":  # married: old records carry the maiden name
                    w["maiden"] = self.feminine(country, self.surname(country))
                people += [m, w]
                kids = size - 2
                kid_hi = max(17, age - 18)
                twins = kids >= 2 and rng.random() < 0.3
                for k in range(kids):
                    sex = rng.choice("MF")
                    if twins and k == 1:
                        dob = people[-1]["dob"]
                        sex = rng.choice("MF")
                    else:
                        dob = self.birth(16, kid_hi)
                    kl = last
                    if country == "ES":  # father's first surname, mother's first surname
                        kl = last.split(" ")[0] + " " + w["last"].split(" ")[0]
                    kl = self.feminine(country, kl) if sex == "F" else kl
                    names_taken = {p["first"] for p in people}
                    for _ in range(20):
                        g = self.given(country, sex)[0]
                        if g not in names_taken:
                            break
                    people.append(self.person(country, sex, g, kl, dob, hh_id, addr))
            else:  # siblings sharing a flat; twins among them sometimes
                dob0 = self.birth(20, 45)
                twins = rng.random() < 0.35
                names_taken = set()
                for k in range(size):
                    sex = rng.choice("MF")
                    dob = dob0 if twins and k < 2 else self.birth(18, 50)
                    for _ in range(20):
                        g = self.given(country, sex)[0]
                        if g not in names_taken:
                            break
                    names_taken.add(g)
                    ln = self.feminine(country, last) if sex == "F" else last
                    people.append(self.person(country, sex, g, ln, dob, hh_id, addr))
        # Contact points.
        if size > 1 and rng.random() < 0.6:
            landline = self.phone(country, addr["areas"], mobile=False)
        elif size == 1 and rng.random() < 0.2:
            landline = self.phone(country, addr["areas"], mobile=False)
        else:
            landline = None
        family_email = None
        if size > 1 and rng.random() < 0.4:
            family_email = self.email("", people[0]["last"], country, family=True)
        moved = self.address(country) if rng.random() < 0.2 else None
        for p in people:
            p["landline"] = landline
            p["family_email"] = family_email
            if rng.random() < 0.8:
                p["mobile"] = self.phone(country, addr["areas"], mobile=True)
            if rng.random() < 0.85:
                p["emails"].append(self.email(p["first"], p["last"], country))
                if rng.random() < 0.2:
                    p["emails"].append(self.email(p["first"], p["last"], country))
            if p["maiden"] and rng.random() < 0.5:
                p["emails"].insert(0, self.email(p["first"], p["maiden"], country))
            if moved:  # the whole household moved: older records carry the old address
                p["old_addr"], p["addr"] = p["addr"], moved
            elif rng.random() < 0.08:  # one member moved alone
                p["old_addr"], p["addr"] = p["addr"], self.address(country)
        return people


def household_sizes(rng, persons, multi_share):
    """Household sizes adding up to persons, about multi_share of people in households
    of two to five."""
    mean_multi = 2.8
    single_p = (1 - multi_share) * mean_multi / ((1 - multi_share) * mean_multi + multi_share)
    sizes, total = [], 0
    while total < persons:
        s = 1 if rng.random() < single_p else rng.choices([2, 3, 4, 5], weights=[45, 30, 17, 8])[0]
        s = min(s, persons - total)
        sizes.append(s)
        total += s
    return sizes


# ---------------------------------------------------------------------------------------
# Records: one person seen once by one source.

def pick_name(rng, p, nick_rate, dropped_rate=0.01):
    """The first name as a record gives it: formal or a nickname, typos, a lost letter."""
    pool = US_MALE + US_FEMALE if p["country"] == "US" else \
        EU_NAMES[p["country"]]["male"] + EU_NAMES[p["country"]]["female"]
    nicks = next((n for f, n in pool if f == p["first"]), [])
    first = p["first"]
    if nicks and rng.random() < nick_rate:
        first = rng.choice(nicks)
    if rng.random() < 0.03:
        first = typo(rng, first)
    if rng.random() < dropped_rate and len(first) > 3:
        first = first[1:]
    return first


def record(rng, p, src, when):
    """The fields one source holds for person p at time `when` (0 old .. 1 new)."""
    old = when < 0.35
    addr = p["old_addr"] if old and p["old_addr"] else p["addr"]
    last = p["maiden"] if old and p["maiden"] else p["last"]
    rates = src["rates"]
    first = pick_name(rng, p, rates.get("nickname", 0.12), rates.get("dropped", 0.01))
    if rng.random() < 0.03:
        last = typo(rng, last)
    if rng.random() < rates.get("dropped", 0.01) and len(last) > 4:
        last = last[1:]
    if p["country"] == "ES" and rng.random() < 0.35:
        last = last.split(" ")[0]  # only the first surname
    fold = rates.get("fold", 0.0)
    if fold and rng.random() < fold:
        f = german_fold if p["country"] == "DE" and rng.random() < 0.6 else ascii_fold
        first, last = f(first), f(last)
    if rng.random() < rates.get("case", 0.08):
        first = casing(rng, first)
    if rng.random() < rates.get("case", 0.08):
        last = casing(rng, last)
    # Email: a personal mailbox (the one of the time), the family's, or none.
    email = ""
    if rng.random() >= rates.get("no_email", 0.2):
        choices = list(p["emails"])
        if p["family_email"] and (not choices or rng.random() < 0.35):
            email = p["family_email"]
        elif choices:
            email = choices[0] if old or len(choices) == 1 else rng.choice(choices[1:] + choices[:1])
        if email and rng.random() < 0.02:
            local, dom = email.split("@")
            email = typo(rng, local) + "@" + dom
        if email and rng.random() < 0.06:
            email = email.capitalize() if rng.random() < 0.5 else email.upper()
    # Phone: mobile or landline in this source's formats.
    phone = ""
    if rng.random() >= rates.get("no_phone", 0.25):
        nums = [n for n in (p["mobile"], p["landline"]) if n]
        if nums:
            num = p["mobile"] if p["mobile"] and (not p["landline"] or rng.random() < 0.65) else p["landline"]
            phone = format_phone(rng, num, src)
    dob = None if rng.random() < rates.get("no_dob", 0.1) else p["dob"]
    if dob and rng.random() < 0.03:
        dob = date_slip(rng, dob)
    street = format_street(rng, addr, rates)
    postcode = addr["postcode"]
    if addr["country"] == "US" and postcode.startswith("0") and rng.random() < rates.get("zip_int", 0.0):
        postcode = postcode.lstrip("0")
    if addr["country"] == "US" and rng.random() < 0.1:
        postcode += f"-{rng.randrange(10000):04d}"
    if addr["country"] == "GB" and rng.random() < 0.25:
        postcode = rng.choice([postcode.replace(" ", ""), postcode.lower()])
    city = addr["city"]
    if addr["country"] != "US" and city in EU_CITY_ALIASES and rng.random() < 0.2:
        city = EU_CITY_ALIASES[city]
    if rng.random() < 0.05:
        city = city.upper()
    if rng.random() < rates.get("no_address", 0.05):
        street, postcode, city = "", "", ""
    return {"first": first, "last": last, "email": email, "phone": phone, "dob": dob,
            "street": street, "city": city, "state": addr["state"], "postcode": postcode,
            "country": addr["country"], "when": when}


def format_street(rng, addr, rates):
    street = addr["street"]
    if addr["suffix"]:
        full, abbrs = addr["suffix"]
        if abbrs and rng.random() < 0.5:
            street = street[: -len(full)] + rng.choice(abbrs)
        if addr["unit"]:
            u = addr["unit"]
            street += rng.choice([f" {u}", f", {u}", f" #{u.split(' ')[1]}", f" Apartment {u.split(' ')[1]}"])
    elif addr["country"] == "DE" and rng.random() < 0.3:
        street = street.replace("straße", "str.").replace("Straße", "Str.")
    elif addr["country"] == "FR" and rng.random() < 0.2:
        street = street.replace(" avenue ", " av. ").replace(" boulevard ", " bd ")
    if rng.random() < rates.get("fold", 0.0):
        street = ascii_fold(street)
    if rng.random() < 0.02:
        street = typo(rng, street)
    if rng.random() < 0.08:
        street = street.upper() if rng.random() < 0.6 else street.lower()
    return street


def format_phone(rng, num, src):
    country, nsn = num
    style = rng.choice(src["phone_styles"])
    cc = "1" if country == "US" else CALLING[country]
    if country == "US":
        a, b, c = nsn[:3], nsn[3:6], nsn[6:]
        return {"paren": f"({a}) {b}-{c}", "dash": f"{a}-{b}-{c}", "digits": nsn,
                "dots": f"{a}.{b}.{c}", "intl": f"+1 {a} {b} {c}"}.get(style, f"{a}-{b}-{c}")
    trunk = "" if country in ("ES", "PL") else "0"
    if country == "FR":
        groups = " ".join(nsn[i:i + 2] for i in range(1, 9, 2))
        nat, intl = f"0{nsn[0]} {groups}", f"+33 {nsn[0]} {groups}"
    elif country == "GB":
        if nsn.startswith("7"):
            nat, intl = f"0{nsn[:4]} {nsn[4:]}", f"+44 {nsn[:4]} {nsn[4:]}"
        else:
            k = 2 if nsn.startswith("2") else 3
            nat, intl = f"0{nsn[:k]} {nsn[k:]}", f"+44 {nsn[:k]} {nsn[k:]}"
    elif country == "DE":
        k = 3 if nsn.startswith("15") else len(next(a for c in EU_CITIES["DE"] for a in c[2] if nsn.startswith(a)))
        nat, intl = f"0{nsn[:k]} {nsn[k:]}", f"+49 {nsn[:k]} {nsn[k:]}"
        if rng.random() < 0.3:
            nat = f"0{nsn[:k]}/{nsn[k:]}"
    else:
        nat = f"{nsn[:3]} {nsn[3:6]} {nsn[6:]}"
        intl = f"+{cc} {nat}"
    if style == "national":
        return nat
    if style == "0049":
        return "00" + intl[1:]
    return intl


# ---------------------------------------------------------------------------------------
# Populations: who the people are and which sources see them how.

US_SOURCES = {
    "crm": {"file": "crm/contacts.csv", "id": lambda i: f"003{i:09d}",
            "headers": ["ContactId", "FirstName", "LastName", "Email", "Phone",
                        "MailingStreet", "MailingCity", "MailingState", "MailingPostalCode",
                        "Birthdate", "LastModifiedDate"],
            "fields": ["id", "first", "last", "email", "phone", "street", "city", "state",
                       "postcode", "dob:%Y-%m-%d", "updated"],
            "phone_styles": ["paren", "dash", "dash", "intl"],
            "rates": {"nickname": 0.08, "no_email": 0.1, "no_phone": 0.15, "no_dob": 0.2, "case": 0.03}},
    "shop": {"file": "shop/customers.csv", "id": lambda i: str(100000 + i),
             "headers": ["customer_no", "fname", "lname", "e_mail", "mobile", "addr1", "town",
                         "st", "zip", "dob", "created"],
             "fields": ["id", "first", "last", "email", "phone", "street", "city", "state",
                        "postcode", "dob:%m/%d/%Y", "updated"],
             "phone_styles": ["digits", "dash", "dots", "paren"],
             "rates": {"nickname": 0.25, "no_email": 0.02, "no_phone": 0.4, "no_dob": 0.5,
                       "case": 0.15, "zip_int": 0.5, "dropped": 0.02}},
    "loyalty": {"file": "loyalty/members.csv", "id": lambda i: f"LC-{i:07d}",
                "headers": ["CardNumber", "Name", "E-mail", "Tel", "Address", "City",
                            "State", "Postcode", "DateOfBirth", "JoinedAt"],
                "fields": ["id", "full", "email", "phone", "street", "city", "state",
                           "postcode", "dob:%Y-%m-%d", "updated"],
                "phone_styles": ["dash", "intl", "paren"],
                "rates": {"nickname": 0.2, "no_email": 0.35, "no_phone": 0.2, "no_dob": 0.3, "case": 0.1}},
}
NA_SOURCES = {
    "voters": {"file": "voters/roll.csv", "id": lambda i: f"V{i:08d}",
               "headers": ["VoterID", "FirstName", "Surname", "ResidenceAddress", "ResCity",
                           "ResState", "ResZip", "DOB"],
               "fields": ["id", "first", "last", "street", "city", "state", "postcode", "dob:%m/%d/%Y"],
               "phone_styles": ["dash"],
               "rates": {"nickname": 0.03, "no_email": 1, "no_phone": 1, "no_dob": 0.02, "case": 0.3}},
    "clinic": {"file": "clinic/patients.csv", "id": lambda i: f"MRN{i:07d}",
               "headers": ["mrn", "given_name", "family_name", "address", "city", "state",
                           "postal_code", "birth_date"],
               "fields": ["id", "first", "last", "street", "city", "state", "postcode", "dob:%Y-%m-%d"],
               "phone_styles": ["dash"],
               "rates": {"nickname": 0.15, "no_email": 1, "no_phone": 1, "no_dob": 0.25, "case": 0.05}},
    "magazine": {"file": "magazine/subscribers.csv", "id": lambda i: f"SUB{i:06d}",
                 "headers": ["subscriber", "Name", "Street Address", "City", "State", "ZIP"],
                 "fields": ["id", "full", "street", "city", "state", "postcode"],
                 "phone_styles": ["dash"],
                 "rates": {"nickname": 0.3, "no_email": 1, "no_phone": 1, "no_dob": 1,
                           "case": 0.1, "zip_int": 0.4, "dropped": 0.02}},
}
TWO_SOURCES = {
    "members": {"file": "members/members.csv", "id": lambda i: f"M{i:07d}",
                "headers": ["member_id", "first", "last", "email", "phone", "dob", "street",
                            "city", "state", "zip"],
                "fields": ["id", "first", "last", "email", "phone", "dob:%Y-%m-%d", "street",
                           "city", "state", "postcode"],
                "phone_styles": ["dash", "paren"],
                "rates": {"nickname": 0.1, "no_email": 0.1, "no_phone": 0.3, "no_dob": 0.1, "case": 0.02}},
    "vendor": {"file": "vendor/consumers.csv", "id": lambda i: f"K{i:08d}",
               "headers": ["KEY", "GIVEN_NAME", "FAMILY_NAME", "BIRTH", "ADDRESS_LINE",
                           "TOWN", "STATE_CODE", "POSTAL", "PHONE_NO", "EMAIL"],
               "fields": ["id", "first", "last", "dob:%d/%m/%Y", "street", "city", "state",
                          "postcode", "phone", "email"],
               "phone_styles": ["digits", "intl", "dots"],
               "rates": {"nickname": 0.25, "no_email": 0.6, "no_phone": 0.3, "no_dob": 0.05,
                         "case": 0.5, "zip_int": 0.3, "dropped": 0.02}},
}
EU_SOURCES = {
    "shop": {"file": "shop/customers.csv", "id": lambda i: f"EU{i:07d}",
             "headers": ["CustomerID", "FirstName", "Surname", "E-mail", "Phone", "Address",
                         "Town", "Postcode", "Country", "DOB"],
             "fields": ["id", "first", "last", "email", "phone", "street", "city", "postcode",
                        "country", "dob:%d/%m/%Y"],
             "phone_styles": ["national", "intl", "intl"],
             "rates": {"nickname": 0.1, "no_email": 0.15, "no_phone": 0.2, "no_dob": 0.4,
                       "case": 0.08, "fold": 0.15}},
    "kunden": {"file": "kunden/kundendaten.csv", "id": lambda i: str(700000 + i),
               "headers": ["Kundennummer", "Vorname", "Nachname", "Strasse", "PLZ", "Ort",
                           "Land", "Geburtsdatum", "Telefon", "EMail"],
               "fields": ["id", "first", "last", "street", "postcode", "city", "country",
                          "dob:%d.%m.%Y", "phone", "email"],
               "phone_styles": ["national", "national", "intl", "0049"],
               "rates": {"nickname": 0.1, "no_email": 0.5, "no_phone": 0.2, "no_dob": 0.1,
                         "case": 0.05, "fold": 0.3}},
    "fidelite": {"file": "fidelite/clients.csv", "id": lambda i: f"F-{i:06d}",
                 "headers": ["id_client", "prenom", "nom", "adresse", "code_postal", "ville",
                             "pays", "date_naissance", "telephone", "courriel"],
                 "fields": ["id", "first", "last", "street", "postcode", "city", "country",
                            "dob:%d/%m/%Y", "phone", "email"],
                 "phone_styles": ["national", "national", "intl"],
                 "rates": {"nickname": 0.05, "no_email": 0.3, "no_phone": 0.2, "no_dob": 0.2,
                           "case": 0.2, "fold": 0.25}},
}

POPULATIONS = {
    # name: (default persons, sources, multi-person household share, records a person)
    "households": (5000, US_SOURCES, 0.5, [30, 28, 20, 13, 9]),
    "names_addresses": (5000, NA_SOURCES, 0.4, [30, 35, 22, 13]),
    "two_sources": (8000, TWO_SOURCES, 0.3, None),
    "non_us": (5000, EU_SOURCES, 0.3, [35, 30, 20, 10, 5]),
}
EU_COUNTRY_SHARE = {"GB": 35, "DE": 30, "FR": 25, "ES": 5, "PL": 5}


def sources_for(pop, person, rng):
    """Which sources see this person, one entry a record."""
    _, sources, _, counts = POPULATIONS[pop]
    names = list(sources)
    if pop == "two_sources":
        r = rng.random()
        return ["members", "vendor"] if r < 0.6 else (["members"] if r < 0.8 else ["vendor"])
    n = rng.choices(range(1, len(counts) + 1), weights=counts)[0]
    if pop == "non_us":
        home = {"DE": "kunden", "FR": "fidelite"}.get(person["country"])
        allowed = ["shop", home] if home else ["shop"]
        if rng.random() < 0.03:  # a customer abroad in the other country's file
            allowed.append(rng.choice(["kunden", "fidelite"]))
        return [rng.choice(allowed) for _ in range(n)]
    return [rng.choice(names) for _ in range(n)]


def full_name(rng, first, last):
    r = rng.random()
    if r < 0.55:
        return f"{first} {last}"
    if r < 0.85:
        return f"{last.strip().upper()}, {first.strip()}"
    return f"{last}, {first}"


def generate(pop, persons, seed, out):
    rng = random.Random(f"{pop}:{seed}")
    default_n, sources, multi_share, _ = POPULATIONS[pop]
    persons = persons or default_n
    world = World(rng, "EU" if pop == "non_us" else "US")
    people = []
    for h, size in enumerate(household_sizes(rng, persons, multi_share)):
        country = "US"
        if pop == "non_us":
            country = rng.choices(list(EU_COUNTRY_SHARE), weights=list(EU_COUNTRY_SHARE.values()))[0]
        people += world.household(h, size, country)
    rows = {name: [] for name in sources}
    start = dt.datetime(2019, 1, 1)
    for p in people:
        for src in sources_for(pop, p, rng):
            when = rng.random()
            rec = record(rng, p, sources[src], when)
            rec["updated"] = (start + dt.timedelta(seconds=int(when * 7.5 * 365 * 86400))).strftime("%Y-%m-%dT%H:%M:%SZ")
            rec["full"] = full_name(rng, rec["first"], rec["last"])
            rows[src].append((p["id"], rec))
    truth = []
    for name, src in sources.items():
        recs = rows[name]
        rng.shuffle(recs)
        path = os.path.join(out, src["file"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(src["headers"])
            for i, (pid, rec) in enumerate(recs, start=1):
                rid = src["id"](i)
                row = []
                for field in src["fields"]:
                    if field == "id":
                        row.append(rid)
                    elif field.startswith("dob:"):
                        row.append(render_date(rec["dob"], field[4:]) if rec["dob"] else "")
                    elif field == "country":
                        row.append(rng.choice(EU_COUNTRY_NAMES[rec["country"]]) if rec["country"] in EU_COUNTRY_NAMES else rec["country"])
                    else:
                        row.append(rec[field])
                w.writerow(row)
                truth.append((name, rid, pid))
    with open(os.path.join(out, "truth.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["source", "record_id", "person_id"])
        w.writerows(truth)
    return len(people), len(truth)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--population", required=True, choices=sorted(POPULATIONS))
    ap.add_argument("--persons", type=int, default=0, help="persons to invent (default: the population's)")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    persons, records = generate(a.population, a.persons, a.seed, a.out)
    print(f"{a.population}: {persons} persons, {records} records in {a.out}")


if __name__ == "__main__":
    main()
