"""Turn a hospital's name, as a data file writes it, into an NVFlare site name."""

from __future__ import annotations

import re
import unicodedata

#: what NVFlare and the config accept as a site name
SITE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_SEPARATORS = re.compile(r"[^a-z0-9]+")


def site_slug(name: str) -> str:
    """Return the site name of a hospital: ASCII, lower case, words joined by ``-`` ("Mercy General" -> mercy-general).

    Apostrophes vanish ("St Mary's" -> st-marys); any other run of characters that are not letters or
    digits becomes one ``-``. Raises ``ValueError`` when nothing is left or the result is too long.

    :param name: the hospital as the data names it
    """
    ascii_name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    slug = _SEPARATORS.sub("-", ascii_name.lower().replace("'", "")).strip("-")
    if not SITE_NAME.match(slug):
        raise ValueError(f"hospital {name!r} gives no usable site name ({slug!r}: 1-63 of a-z, 0-9 and -)")
    return slug
