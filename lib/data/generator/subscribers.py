"""Newsletter subscribers for the generated users (``generate_subscribers``, ``write_subscribers_csv``).

A share of the users, each with a unique e-mail address at the reserved example.com/.org/.net
domains, a marketing consent flag, a first name (varied, some non-ASCII, some with an apostrophe)
and a locale. Drawn from their own random stream (the event seed plus a fixed tag), so the events
do not change when the subscriber settings do.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lib.data.generator.calibration import DEFAULT_SEED
from lib.data.generator.writers import temp_path
from lib.schema import SUBSCRIBER_COLUMNS

DEFAULT_SUBSCRIBER_SHARE = 0.30
DEFAULT_CONSENT_SHARE = 0.85
SUBSCRIBER_DOMAINS = ("example.com", "example.org", "example.net")  # reserved (RFC 2606)
_LOCALE_WEIGHTS = {"ru_RU": 0.40, "en_US": 0.20, "de_DE": 0.10, "pl_PL": 0.10, "fr_FR": 0.10, "es_ES": 0.10}
# (display name, ASCII form for the e-mail address)
_FIRST_NAMES = {
    "ru_RU": (("Анна", "anna"), ("Мария", "maria"), ("Екатерина", "ekaterina"), ("Ольга", "olga"),
              ("Наталья", "natalya"), ("Юлия", "yulia"), ("Ирина", "irina"), ("Дмитрий", "dmitry"),
              ("Алексей", "alexey"), ("Сергей", "sergey"), ("Svetlana", "svetlana"), ("Olga", "olga"),
              ("Tatiana", "tatiana"), ("Elena", "elena"), ("Ksenia", "ksenia"), ("Darya", "darya"),
              ("Алёна", "alena"), ("Viktoria", "viktoria")),
    "en_US": (("Olivia", "olivia"), ("Emma", "emma"), ("Ava", "ava"), ("Sophia", "sophia"),
              ("Isabella", "isabella"), ("Mia", "mia"), ("Liam", "liam"), ("Noah", "noah"),
              ("James", "james"), ("Zoë", "zoe"), ("Chloë", "chloe"), ("O'Brien", "obrien"),
              ("D'Angelo", "dangelo"), ("Mary-Kate", "marykate"), ("Renée", "renee"),
              ("Madison", "madison"), ("Abigail", "abigail"), ("Harper", "harper")),
    "de_DE": (("Anna", "anna"), ("Lena", "lena"), ("Lukas", "lukas"), ("Jürgen", "juergen"),
              ("Jörg", "joerg"), ("Sören", "soeren"), ("Björn", "bjoern"), ("Käthe", "kaethe"),
              ("Mia", "mia"), ("Felix", "felix"), ("Hannah", "hannah"), ("Günther", "guenther"),
              ("Marie", "marie"), ("Lea", "lea")),
    "pl_PL": (("Łukasz", "lukasz"), ("Zofia", "zofia"), ("Małgorzata", "malgorzata"),
              ("Agnieszka", "agnieszka"), ("Paweł", "pawel"), ("Michał", "michal"),
              ("Katarzyna", "katarzyna"), ("Żaneta", "zaneta"), ("Bożena", "bozena"), ("Anna", "anna"),
              ("Joanna", "joanna"), ("Magdalena", "magdalena"), ("Jędrzej", "jedrzej"), ("Ewa", "ewa")),
    "fr_FR": (("Camille", "camille"), ("Léa", "lea"), ("Chloé", "chloe"), ("Manon", "manon"),
              ("Inès", "ines"), ("Anaïs", "anais"), ("Hélène", "helene"), ("Émilie", "emilie"),
              ("Gaëlle", "gaelle"), ("François", "francois"), ("Jean-Luc", "jeanluc"), ("Hugo", "hugo"),
              ("Noël", "noel"), ("Margaux", "margaux")),
    "es_ES": (("José", "jose"), ("María", "maria"), ("Lucía", "lucia"), ("Sofía", "sofia"),
              ("Martina", "martina"), ("Álvaro", "alvaro"), ("Jesús", "jesus"), ("Nuria", "nuria"),
              ("Begoña", "begona"), ("Iñigo", "inigo"), ("Carmen", "carmen"), ("Raúl", "raul"),
              ("Paula", "paula"), ("Elena", "elena")),
}
_LAST_NAMES = {
    "ru_RU": ("ivanova", "petrova", "smirnova", "kuznetsova", "popova", "sokolova", "volkova", "ivanov",
              "petrov", "sokolov", "morozova", "novikova", "fedorova", "pavlova", "lebedeva", "kozlova",
              "vasilieva", "semenova", "egorova", "orlova", "andreeva", "makarova", "nikitina", "zaitseva",
              "soloveva", "borisova", "yakovleva", "grigorieva", "romanova", "vorobieva"),
    "en_US": ("smith", "johnson", "williams", "brown", "jones", "miller", "davis", "wilson", "taylor",
              "obrien", "anderson", "clark", "thomas", "moore", "jackson", "white", "harris", "martin",
              "thompson", "garcia", "robinson", "lewis", "walker", "young", "allen", "king", "wright"),
    "de_DE": ("mueller", "schmidt", "schneider", "fischer", "weber", "meyer", "wagner", "becker",
              "hoffmann", "schulz", "koch", "richter", "klein", "wolf", "schroeder", "neumann", "schwarz",
              "zimmermann", "braun", "krueger", "hofmann", "hartmann", "lange", "schmitt", "werner"),
    "pl_PL": ("nowak", "kowalska", "wisniewska", "wojcik", "kowalczyk", "kaminska", "lewandowska",
              "zielinska", "nowakowski", "mazur", "krawczyk", "piotrowska", "grabowska", "pawlowska",
              "michalska", "krol", "wieczorek", "jablonska", "wrobel", "majewska", "olszewska", "stepien"),
    "fr_FR": ("martin", "bernard", "dubois", "thomas", "robert", "richard", "petit", "durand",
              "lefebvre", "moreau", "laurent", "simon", "michel", "garcia", "david", "bertrand", "roux",
              "vincent", "fournier", "morel", "girard", "andre", "mercier", "dupont", "lambert"),
    "es_ES": ("garcia", "fernandez", "gonzalez", "rodriguez", "lopez", "martinez", "sanchez", "perez",
              "gomez", "martin", "jimenez", "ruiz", "hernandez", "diaz", "moreno", "munoz", "alvarez",
              "romero", "alonso", "gutierrez", "navarro", "torres", "dominguez", "vazquez", "ramos"),
}


def generate_subscribers(user_ids: Sequence[int] | np.ndarray, seed: int = DEFAULT_SEED,
                         share: float = DEFAULT_SUBSCRIBER_SHARE,
                         consent_share: float = DEFAULT_CONSENT_SHARE) -> pd.DataFrame:
    """Newsletter subscribers for a share of ``user_ids`` (deterministic for a seed).

    Columns ``lib.schema.SUBSCRIBER_COLUMNS``: ``user_id`` (int), ``email`` (unique, at
    example.com/.org/.net only), ``consent`` (bool, true for ~``consent_share``), ``first_name``
    (varied, some non-ASCII and some with an apostrophe), ``locale`` (``ru_RU``, ``en_US``, ...).
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be between 0 and 1 (got {share!r})")
    if not 0.0 <= consent_share <= 1.0:
        raise ValueError(f"consent_share must be between 0 and 1 (got {consent_share!r})")
    ids = np.sort(np.asarray(user_ids, dtype=np.int64))
    if len(ids):
        ids = ids[np.concatenate([[True], ids[1:] != ids[:-1]])]
    rng = np.random.default_rng([int(seed), 0x5B5C])
    k = int(round(share * len(ids)))
    if share > 0 and len(ids) and k == 0:
        k = 1
    chosen = np.sort(rng.choice(ids, k, replace=False)) if k else np.zeros(0, dtype=np.int64)
    locales = list(_LOCALE_WEIGHTS)
    loc = rng.choice(len(locales), k, p=np.asarray(list(_LOCALE_WEIGHTS.values())))
    names_idx = rng.random(k)
    last_idx = rng.random(k)
    pattern = rng.choice(5, k, p=[0.35, 0.25, 0.15, 0.15, 0.10])
    numbers = rng.integers(1, 100, k)
    domain = rng.choice(len(SUBSCRIBER_DOMAINS), k, p=[0.6, 0.25, 0.15])
    consent = rng.random(k) < consent_share

    first_names: list[str] = []
    emails: list[str] = []
    seen: set[str] = set()
    next_suffix: dict[str, int] = {}
    for li, ni, lni, pat, num, dom in zip(loc.tolist(), names_idx.tolist(), last_idx.tolist(),
                                          pattern.tolist(), numbers.tolist(), domain.tolist()):
        locale = locales[li]
        names = _FIRST_NAMES[locale]
        display, slug = names[int(ni * len(names))]
        last = _LAST_NAMES[locale][int(lni * len(_LAST_NAMES[locale]))]
        if pat == 0:
            local = f"{slug}.{last}"
        elif pat == 1:
            local = f"{slug}{last}{num:02d}" if num < 60 else f"{slug}.{last}{1900 + num}"
        elif pat == 2:
            local = f"{slug}_{last}"
        elif pat == 3:
            local = f"{slug[0]}{last}"
        else:
            local = f"{last}.{slug}{num}"
        domain_name = SUBSCRIBER_DOMAINS[dom]
        email = f"{local}@{domain_name}"
        while email in seen:  # taken: next free number for this local part
            suffix = next_suffix.get(email, 2)
            next_suffix[email] = suffix + 1
            email = f"{local}{suffix}@{domain_name}"
        seen.add(email)
        first_names.append(display)
        emails.append(email)
    return pd.DataFrame(
        {
            "user_id": chosen,
            "email": np.asarray(emails, dtype=object),
            "consent": consent,
            "first_name": np.asarray(first_names, dtype=object),
            "locale": np.asarray([locales[i] for i in loc], dtype=object),
        },
        columns=list(SUBSCRIBER_COLUMNS),
    )


def write_subscribers_csv(subscribers: pd.DataFrame, out) -> Path:
    """Write ``generate_subscribers`` output: UTF-8, header SUBSCRIBER_COLUMNS, consent ``true``/``false``."""
    path = Path(out)
    tmp = temp_path(path)
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(SUBSCRIBER_COLUMNS)
            cols = [subscribers[c].tolist() for c in SUBSCRIBER_COLUMNS]
            ci = SUBSCRIBER_COLUMNS.index("consent")
            cols[ci] = ["true" if v else "false" for v in cols[ci]]
            writer.writerows(zip(*cols))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
