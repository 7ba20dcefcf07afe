-- symbolsvc registry schema 2 (PostgreSQL): the access log's Merkle tree
-- (docs/ACCESS_LOG.md). Same tables as on SQLite; portable to Citus,
-- CockroachDB and YugabyteDB (docs/SCALING.md).

-- NULL until the sequencer integrates the record; once set it never changes.
-- Integration takes unsequenced records in id order, but ids are not commit
-- order here: a record whose transaction commits late simply waits for the
-- next integration (the scan is "every row still NULL", never "ids above a mark").
ALTER TABLE access_records ADD COLUMN leaf_index bigint;
CREATE UNIQUE INDEX access_records_by_leaf ON access_records (leaf_index);
CREATE INDEX access_records_unsequenced ON access_records (id) WHERE leaf_index IS NULL;

-- Every completed perfect subtree root; level 0 holds the leaf hashes. Insert-only.
CREATE TABLE tree_nodes (
  level integer NOT NULL,
  idx   bigint  NOT NULL,
  hash  bytea   NOT NULL,
  PRIMARY KEY (level, idx)
);

-- Every checkpoint ever published (C2SP signed note for the tree of tree_size leaves).
CREATE TABLE checkpoints (
  tree_size    bigint PRIMARY KEY,
  note         text   NOT NULL,
  signed_at_us bigint NOT NULL
);

-- The tree's right edge at tree_size (merkle.Frontier.to_bytes()). One row.
CREATE TABLE log_state (
  id        integer PRIMARY KEY CHECK (id = 1),
  tree_size bigint  NOT NULL,
  frontier  bytea   NOT NULL
);

-- The deployment's one sequencer: whoever holds an unexpired lease. One row,
-- taken and renewed by a conditional UPDATE (no advisory locks: CockroachDB has none).
CREATE TABLE sequencer_lease (
  id         integer PRIMARY KEY CHECK (id = 1),
  holder     text    NOT NULL,
  expires_us bigint  NOT NULL
);
