-- Entities of the kinds without a table of their own (tokens and devices keep theirs): one row
-- per entity with its snapshot as JSON text, applied only over its predecessor's version, and
-- the events their changes recorded. `lookup` is a JSON object of the text values the kind is
-- found by (`Entity::index_columns`); a kind's own migration indexes the ones it looks up, as
-- `CREATE INDEX ... ON entities (kind, (lookup::jsonb ->> 'name'))`.
CREATE TABLE entities (
    kind     TEXT   NOT NULL,
    id       TEXT   NOT NULL,
    version  BIGINT NOT NULL,
    state    TEXT   NOT NULL,
    lookup   TEXT   NOT NULL,
    created  BIGINT NOT NULL,
    updated  BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);

CREATE TABLE entity_events (
    seq      BIGSERIAL PRIMARY KEY,
    kind     TEXT   NOT NULL,
    id       TEXT   NOT NULL,
    version  BIGINT NOT NULL,
    at       BIGINT NOT NULL,
    event    TEXT   NOT NULL
);

CREATE INDEX entity_events_by_entity ON entity_events (kind, id, seq);
