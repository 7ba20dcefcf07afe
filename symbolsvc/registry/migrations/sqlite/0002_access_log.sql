-- symbolsvc registry schema 2 (SQLite): the access log's Merkle tree
-- (docs/ACCESS_LOG.md). leaf_index is NULL until the sequencer integrates the
-- record; once set it never changes. (SQLite cannot add a UNIQUE column, so
-- uniqueness is a unique index.)
ALTER TABLE access_records ADD COLUMN leaf_index INTEGER;
CREATE UNIQUE INDEX IF NOT EXISTS access_records_by_leaf ON access_records (leaf_index);
CREATE INDEX IF NOT EXISTS access_records_unsequenced ON access_records (id) WHERE leaf_index IS NULL;

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
