-- symbolsvc registry schema 4 (PostgreSQL): idempotent exchanges (docs/EXCHANGES.md).
-- exchange_key = HMAC(K_exchange, requester_agency, exchange_id) and exchange_digest =
-- HMAC(K_exchange, the exchange's content): keyed digests, no request in clear. At most
-- one record per exchange key (NULL for records that are no exchange, or older ones):
-- a second insert of a key waits for the first's transaction, then does nothing.
ALTER TABLE access_records ADD COLUMN exchange_key bytea;
ALTER TABLE access_records ADD COLUMN exchange_digest bytea;
CREATE UNIQUE INDEX access_records_by_exchange ON access_records (exchange_key);
