-- cashgrid schema, version 3 (SQLite). Same logical schema as
-- migrations/postgres/0003_idempotency.sql: idempotency keys of creating requests.

-- A client's Idempotency-Key, committed with what its request created. A retry finds the
-- original result here; the same key with another request is refused.
-- Kept at least 24 hours: the housekeeping deletes keys older than that.
CREATE TABLE idempotency_keys (
    customer_id INTEGER NOT NULL,
    idem_key    TEXT    NOT NULL,
    -- SHA-256 (hex) of the request's kind and validated fields.
    fingerprint TEXT    NOT NULL,
    created     INTEGER NOT NULL,
    -- The created entity as it was answered, JSON text.
    result      TEXT    NOT NULL,
    PRIMARY KEY (customer_id, idem_key)
) STRICT;

CREATE INDEX idempotency_keys_created ON idempotency_keys (created);
