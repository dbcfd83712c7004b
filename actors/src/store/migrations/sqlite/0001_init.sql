-- cashgrid schema, version 1 (SQLite). Same logical schema as migrations/postgres/0001_init.sql.
-- Times are INTEGER epoch milliseconds UTC; uuids are lower-case hyphenated TEXT; enums are their
-- wire text; JSON values are TEXT produced by serde_json. STRICT tables refuse mistyped values.

CREATE TABLE customers (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    created      INTEGER NOT NULL,
    -- Stored lower-cased: the original compares e-mail addresses case-insensitively.
    email        TEXT    NOT NULL UNIQUE,
    display_name TEXT    NULL,
    roles        TEXT    NOT NULL DEFAULT 'user',
    status       INTEGER NOT NULL DEFAULT 1,
    info         TEXT    NULL
) STRICT;

CREATE TABLE access (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    created     INTEGER NOT NULL,
    scope       TEXT    NOT NULL,
    -- Stored lower-cased.
    apikey      TEXT    NOT NULL UNIQUE,
    secret_hash BLOB    NOT NULL
) STRICT;

CREATE INDEX access_customer ON access (customer_id);

CREATE TABLE params (
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    pkey        TEXT    NOT NULL,
    pvalue      TEXT    NOT NULL,
    updated     INTEGER NOT NULL,
    PRIMARY KEY (customer_id, pkey)
) STRICT;

CREATE TABLE devices (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid        TEXT    NOT NULL UNIQUE,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    created     INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    status      INTEGER NOT NULL DEFAULT 0,
    pubkey      TEXT    NULL,
    lat         REAL    NULL,
    lon         REAL    NULL,
    refname     TEXT    NULL,
    info        TEXT    NULL
) STRICT;

CREATE INDEX devices_customer ON devices (customer_id, id);

CREATE TABLE tokens (
    -- Insertion order, for lists.
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid             TEXT    NOT NULL UNIQUE,
    version          INTEGER NOT NULL,
    created          INTEGER NOT NULL,
    updated          INTEGER NULL,
    type             TEXT    NOT NULL,
    plain_code       TEXT    NULL,
    secure_code      TEXT    NOT NULL,
    code_hash        BLOB    NULL,
    amount           INTEGER NOT NULL,
    symbol           TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    clearstate       INTEGER NOT NULL,
    expires          INTEGER NULL,
    refname          TEXT    NULL,
    lockrefname      TEXT    NULL,
    info             TEXT    NULL,
    processing_info  TEXT    NULL,
    owner_id         INTEGER NOT NULL REFERENCES customers (id),
    owner_device     TEXT    NOT NULL,
    lock_device      TEXT    NULL,
    lock_customer_id INTEGER NULL
) STRICT;

-- Plain codes are unique among live tokens: the domain clears them in every final state.
CREATE UNIQUE INDEX tokens_plain_code ON tokens (plain_code) WHERE plain_code IS NOT NULL;
CREATE INDEX tokens_owner ON tokens (owner_id, seq);
CREATE INDEX tokens_device_state ON tokens (owner_device, state);
CREATE INDEX tokens_open_expires ON tokens (state, expires) WHERE state = 'OPEN';

CREATE TABLE token_events (
    -- The global event sequence.
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    token_uuid       TEXT    NOT NULL,
    version          INTEGER NOT NULL,
    kind             TEXT    NOT NULL,
    from_state       TEXT    NULL,
    to_state         TEXT    NOT NULL,
    created          INTEGER NOT NULL,
    owner_id         INTEGER NOT NULL,
    cash_customer_id INTEGER NULL
) STRICT;

CREATE INDEX token_events_owner ON token_events (owner_id, seq);
