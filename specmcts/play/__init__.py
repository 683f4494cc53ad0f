"""Playing: matches (``match``: the one match loop for nets, GnuGo and any GTP engine; ``engine_match``:
engine against engine; ``elo``), the GTP engine (``gtp``), KataGo's JSON analysis engine (``analysis_engine``)
and the client of external GTP engines (``gtp_client``). Imports the engine and below."""
