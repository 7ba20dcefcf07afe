-- symbolsvc registry schema 4 (SQLite): idempotent exchanges (docs/EXCHANGES.md).
-- exchange_key = HMAC(K_exchange, requester_agency, exchange_id) and exchange_digest =
-- HMAC(K_exchange, the exchange's content): keyed digests, no request in clear. At most
-- one record per exchange key (NULL for records that are no exchange, or older ones).
ALTER TABLE access_records ADD COLUMN exchange_key BLOB;
ALTER TABLE access_records ADD COLUMN exchange_digest BLOB;
CREATE UNIQUE INDEX IF NOT EXISTS access_records_by_exchange ON access_records (exchange_key);
