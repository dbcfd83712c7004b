-- cashgrid schema, version 3 (PostgreSQL): idempotency keys of creating requests.

-- A client's Idempotency-Key, committed with what its request created. A retry finds the
-- original result here (on any node); the same key with another request is refused.
-- Kept at least 24 hours: the housekeeping deletes keys older than that.
CREATE TABLE idempotency_keys (
    customer_id BIGINT NOT NULL,
    idem_key    TEXT   NOT NULL,
    -- SHA-256 (hex) of the request's kind and validated fields.
    fingerprint TEXT   NOT NULL,
    created     BIGINT NOT NULL,
    -- The created entity as it was answered, JSON text.
    result      TEXT   NOT NULL,
    PRIMARY KEY (customer_id, idem_key)
);

CREATE INDEX idempotency_keys_created ON idempotency_keys (created);
