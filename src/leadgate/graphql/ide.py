"""Self-contained GraphiQL page for leadgate.

Strawberry's built-in IDE pulls React and GraphiQL from unpkg, which leaves operators on
air-gapped hosts with a blank page. This module serves the same GraphiQL 3.8.3 + explorer
plugin from files vendored under ``static/`` instead.

Wiring (done by the app, not here)::

    app.router.add_static(STATIC_PREFIX, STATIC_DIR)
    # and return render_graphiql(...) from the GraphQL view's render_graphql_ide()
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Final

__all__ = ["STATIC_DIR", "STATIC_PREFIX", "render_graphiql"]

STATIC_DIR: Final[Path] = Path(__file__).resolve().with_name("static")
STATIC_PREFIX: Final = "/graphql/static"

# Shown when no key is injected: hints at the expected shape without being a usable key.
_PLACEHOLDER_KEY: Final = "lw_live_..."

_STATIC_SLOT: Final = "__LEADGATE_STATIC__"
_CONFIG_SLOT: Final = "__LEADGATE_CONFIG__"

# Escaping these keeps arbitrary strings from closing the <script> element ("</script>"),
# opening an HTML comment ("<!--") or being read as an entity, whatever the key contains.
# U+2028/U+2029 are already \u-escaped by ensure_ascii.
_HTML_UNSAFE: Final = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def _load_template() -> str:
    template = Path(__file__).with_name("ide.html").read_text(encoding="utf-8")
    # Fail at import rather than serve a page that silently loads nothing.
    for slot in (_STATIC_SLOT, _CONFIG_SLOT):
        if slot not in template:
            raise RuntimeError(f"ide.html is missing the {slot} placeholder")
    return template.replace(_STATIC_SLOT, STATIC_PREFIX)


_TEMPLATE: Final = _load_template()


def _script_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=True).translate(_HTML_UNSAFE)


# Bounded because api_key comes from callers: an unbounded cache keyed on it would grow
# with every distinct key ever rendered.
@functools.lru_cache(maxsize=64)
def _render(endpoint: str, api_key: str | None) -> str:
    headers = json.dumps({"Authorization": f"Bearer {api_key or _PLACEHOLDER_KEY}"})
    config = {
        "endpoint": endpoint,
        "headers": headers,
        "headersFromServer": api_key is not None,
    }
    return _TEMPLATE.replace(_CONFIG_SLOT, _script_json(config))


def render_graphiql(*, endpoint: str = "/graphql", api_key: str | None = None) -> str:
    """Return the GraphiQL HTML page.

    ``endpoint`` may be relative; the page resolves it against its own URL and derives the
    ``ws://``/``wss://`` subscription URL (graphql-transport-ws) from it. With ``api_key``
    the headers editor is pre-filled with that bearer token; otherwise it shows a
    placeholder that never overrides headers the user already persisted in the browser.
    """
    # An empty key (typically an unset env var) is treated as no key, not as "Bearer ".
    return _render(endpoint, api_key or None)
