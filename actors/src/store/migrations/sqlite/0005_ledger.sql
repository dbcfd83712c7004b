-- The double-entry ledger (ARCHITECTURE.md, "The ledger").
--
-- An account's four sums are changed only by adding a transfer's changes, and only where the
-- row keeps the account's limits afterwards (`store/ledger.rs`, MOVE): the account actors
-- decide in memory, the row has the last word. Sums are minor units, at most 2^63 - 1.
CREATE TABLE ledger_accounts (
    id                              TEXT    PRIMARY KEY,
    customer_id                     INTEGER  NOT NULL,
    owner_kind                      TEXT    NOT NULL,
    owner_id                        TEXT    NOT NULL,
    currency                        TEXT    NOT NULL,
    kind                            TEXT    NOT NULL,
    debits_must_not_exceed_credits  INTEGER NOT NULL,
    credits_must_not_exceed_debits  INTEGER NOT NULL,
    frozen                          INTEGER NOT NULL DEFAULT 0,
    debits_pending                  INTEGER  NOT NULL DEFAULT 0,
    debits_posted                   INTEGER  NOT NULL DEFAULT 0,
    credits_pending                 INTEGER  NOT NULL DEFAULT 0,
    credits_posted                  INTEGER  NOT NULL DEFAULT 0,
    version                         INTEGER  NOT NULL,
    created                         INTEGER  NOT NULL,
    updated                         INTEGER  NOT NULL
);

CREATE INDEX ledger_accounts_by_customer ON ledger_accounts (customer_id, id);
CREATE INDEX ledger_accounts_by_owner ON ledger_accounts (owner_kind, owner_id, id);

-- Transfers, never edited but for a hold's state. `record` is the whole transfer as JSON (what
-- a read answers); the other columns are what queries select by.
CREATE TABLE ledger_transfers (
    id             TEXT    PRIMARY KEY,
    debit          TEXT    NOT NULL,
    credit         TEXT    NOT NULL,
    amount         INTEGER  NOT NULL,
    currency       TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    pending_id     TEXT,
    expires_at     INTEGER,
    pending_state  TEXT,
    record         TEXT    NOT NULL,
    created        INTEGER  NOT NULL,
    updated        INTEGER  NOT NULL
);

-- The expiry sweep's question: which holds are due.
CREATE INDEX ledger_holds_due ON ledger_transfers (expires_at) WHERE pending_state = 'pending';

-- Each account's journal and the feed: one entry per account a change touches, with the
-- account's sums after it. `seq` orders the feed; (account, at, seq) serves statements.
CREATE TABLE ledger_entries (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    account          TEXT    NOT NULL,
    customer_id      INTEGER  NOT NULL,
    transfer         TEXT,
    kind             TEXT    NOT NULL,
    side             TEXT,
    amount           INTEGER,
    debits_pending   INTEGER  NOT NULL,
    debits_posted    INTEGER  NOT NULL,
    credits_pending  INTEGER  NOT NULL,
    credits_posted   INTEGER  NOT NULL,
    at               INTEGER  NOT NULL
);

CREATE INDEX ledger_entries_by_account ON ledger_entries (account, at, seq);
CREATE INDEX ledger_entries_by_customer ON ledger_entries (customer_id, seq);
