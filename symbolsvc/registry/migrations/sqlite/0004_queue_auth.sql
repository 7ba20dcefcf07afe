-- symbolsvc registry schema 4 (SQLite): authenticated queued records, their
-- quarantine, and finding a leaf by its hash (docs/QUEUE_AUTH.md).
-- mac: HMAC-SHA256 under a key derived from the keyring (never stored here) over
-- the row's id and its exact bytes, written with the row; the sequencer integrates
-- only rows whose mac verifies. queued_us: when the row was appended (µs since the
-- epoch), for the integration lag and the maximum merge delay. Rows written before
-- this migration keep NULL in both.
ALTER TABLE access_records ADD COLUMN mac BLOB;
ALTER TABLE access_records ADD COLUMN queued_us INTEGER;

-- Queued rows the sequencer refused to integrate (forged, altered, copied, replayed):
-- moved here, never deleted silently, until an operator has reviewed them.
CREATE TABLE IF NOT EXISTS quarantined_records (
  qid            INTEGER PRIMARY KEY,
  id             INTEGER NOT NULL,
  pseudonym      BLOB,
  sealed_subject BLOB,
  leaf           BLOB,
  mac            BLOB,
  reason         TEXT    NOT NULL,
  quarantined_us INTEGER NOT NULL,
  reviewed_us    INTEGER
);

-- GetInclusionProof by leaf hash (receipts): level 0 of tree_nodes holds the leaf hashes.
CREATE INDEX IF NOT EXISTS tree_nodes_by_leaf_hash ON tree_nodes (hash) WHERE level = 0;
