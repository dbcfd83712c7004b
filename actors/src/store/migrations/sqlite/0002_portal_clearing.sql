-- cashgrid schema, version 2 (SQLite). Same logical schema as
-- migrations/postgres/0002_portal_clearing.sql: portal logins, account secrets, default
-- accounts, clearing rows, event snapshots for the journal and live feeds, and the indexes that
-- the journal, the feeds, the token statistics and the history cleanup read through.

-- argon2id PHC string; NULL for customers created without a password (CLI).
ALTER TABLE customers ADD COLUMN password_hash TEXT NULL;
-- TOTP secret, encrypted under the server key.
ALTER TABLE customers ADD COLUMN twofa_secret BLOB NULL;

-- The API secret encrypted under the server key, so that its owner can reveal it.
ALTER TABLE access ADD COLUMN secret_encrypted BLOB NULL;

-- The public token snapshot (`Token::snapshot_json`) written with the event.
ALTER TABLE token_events ADD COLUMN payload TEXT NOT NULL DEFAULT '{}';

CREATE INDEX token_events_cash_customer ON token_events (cash_customer_id, seq);
CREATE INDEX token_events_created ON token_events (created);
-- The history cleanup deletes the events of the tokens it removes.
CREATE INDEX token_events_token ON token_events (token_uuid);

-- Token statistics count the tokens locked by a customer's devices; device deletion checks
-- that no token references the device; the history cleanup selects by creation time.
CREATE INDEX tokens_lock_device ON tokens (lock_device);
CREATE INDEX tokens_created ON tokens (created);

CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    value       TEXT    NOT NULL,
    -- BANKACCOUNT, CREDITCARD or CRYPTOWALLET.
    type        TEXT    NOT NULL,
    -- 0 or 1; exactly one default per customer with accounts (the store keeps it so).
    is_default  INTEGER NOT NULL DEFAULT 0,
    symbol      TEXT    NULL,
    refname     TEXT    NULL
) STRICT;

CREATE INDEX accounts_customer ON accounts (customer_id, id);

CREATE TABLE clearing (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    token_uuid       TEXT    NOT NULL UNIQUE,
    debitor_id       INTEGER NOT NULL,
    creditor_id      INTEGER NOT NULL,
    -- JSON snapshots of each party's default account at commit time, or NULL.
    debitor_account  TEXT    NULL,
    creditor_account TEXT    NULL,
    status           INTEGER NOT NULL DEFAULT 0,
    created          INTEGER NOT NULL
) STRICT;

CREATE INDEX clearing_debitor ON clearing (debitor_id, created);
CREATE INDEX clearing_creditor ON clearing (creditor_id, created);
CREATE INDEX clearing_created ON clearing (created);
