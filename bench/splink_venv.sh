# Sourced by the identity benchmarks: makes the Splink environment at $VENV (Splink
# 4.0.17 on DuckDB) when it is missing or holds another version. Splink leans on
# sqlglot to write its SQL, so that is pinned too.
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import splink, sys; sys.exit(splink.__version__ != "4.0.17")' 2>/dev/null; then
  "$VENV/bin/pip" install --quiet "duckdb==1.4.*" "splink==4.0.17" "sqlglot==30.30.0"
fi
