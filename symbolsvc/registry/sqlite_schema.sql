-- symbolsvc registry schema, version 1 (SQLite).
-- No individual number and no value shared between one subject's rows for
-- two agencies: see docs/REGISTRY.md.
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

-- The access log (docs/ACCESS_LOG.md). access_records is the queue of
-- records, in commit order. leaf is the canonical record encoding
-- (symbolsvc.records); pseudonym indexes a subject's records for disclosure;
-- sealed_subject lets the portal's watch label records. leaf_index is NULL
-- until the sequencer integrates the record into the Merkle tree; once set it
-- never changes.
CREATE TABLE IF NOT EXISTS access_records (
  id             INTEGER PRIMARY KEY,
  pseudonym      BLOB NOT NULL,
  sealed_subject BLOB NOT NULL,
  leaf           BLOB NOT NULL,
  leaf_index     INTEGER UNIQUE
);
CREATE INDEX IF NOT EXISTS access_records_by_subject ON access_records (pseudonym, id);
CREATE INDEX IF NOT EXISTS access_records_unsequenced ON access_records (id)
  WHERE leaf_index IS NULL;

-- Every completed perfect subtree root of the tree: level 0 holds the leaf
-- hashes. Rows are only ever inserted (a perfect node's hash never changes).
CREATE TABLE IF NOT EXISTS tree_nodes (
  level INTEGER NOT NULL,
  idx   INTEGER NOT NULL,
  hash  BLOB    NOT NULL,
  PRIMARY KEY (level, idx)
) WITHOUT ROWID;

-- Every checkpoint ever published: the signed note (C2SP tlog-checkpoint)
-- for the tree of tree_size leaves.
CREATE TABLE IF NOT EXISTS checkpoints (
  tree_size    INTEGER PRIMARY KEY,
  note         TEXT    NOT NULL,
  signed_at_us INTEGER NOT NULL
);

-- The tree's right edge (merkle.Frontier.to_bytes()) at tree_size, so start-up
-- never recomputes the tree. One row.
CREATE TABLE IF NOT EXISTS log_state (
  id        INTEGER PRIMARY KEY CHECK (id = 1),
  tree_size INTEGER NOT NULL,
  frontier  BLOB    NOT NULL
);

-- The one sequencer of the deployment: whoever holds an unexpired lease. One row.
CREATE TABLE IF NOT EXISTS sequencer_lease (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  holder     TEXT    NOT NULL,
  expires_us INTEGER NOT NULL
);
