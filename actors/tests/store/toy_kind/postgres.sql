-- The toy counter kind: counters are looked up by owner.
CREATE INDEX entities_toy_counter_owner ON entities (kind, (lookup::jsonb ->> 'owner'));
