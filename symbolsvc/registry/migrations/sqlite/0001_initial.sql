-- symbolsvc registry schema 1 (SQLite): holdings and the access-record queue.
-- No individual number and no value shared between one subject's rows for
-- two agencies: see docs/REGISTRY.md. IF NOT EXISTS: files created before
-- migrations existed already hold exactly this schema.
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

-- One row per (agency, symbol) ever issued. released = 1 ends the holding.
CREATE TABLE IF NOT EXISTS holdings (
  agency         TEXT    NOT NULL,
  symbol         TEXT    NOT NULL,
  sealed_subject BLOB    NOT NULL,
  released       INTEGER NOT NULL DEFAULT 0 CHECK (released IN (0, 1)),
  PRIMARY KEY (agency, symbol)
) WITHOUT ROWID;

-- The access log's queue of records, in commit order. leaf is the canonical
-- record encoding (symbolsvc.records); pseudonym indexes a subject's records
-- for disclosure; sealed_subject lets the portal's watch label records.
CREATE TABLE IF NOT EXISTS access_records (
  id             INTEGER PRIMARY KEY,
  pseudonym      BLOB NOT NULL,
  sealed_subject BLOB NOT NULL,
  leaf           BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS access_records_by_subject ON access_records (pseudonym, id);
