-- The long-term memory store (LangGraph's BaseStore, /store/items): JSON objects under a
-- namespace (its labels joined by '.', which a label cannot hold) and a key, in the space
-- of their owner ('' without API keys). An item with a time to live is deleted
-- ttl_minutes after it was written or last read (expires_at).
CREATE TABLE store_items (
    owner       text NOT NULL,
    namespace   text NOT NULL,
    key         text NOT NULL,
    value       jsonb NOT NULL,
    created_at  double precision NOT NULL,
    updated_at  double precision NOT NULL,
    ttl_minutes double precision,
    expires_at  double precision,
    PRIMARY KEY (owner, namespace, key)
);
CREATE INDEX store_items_expiry ON store_items (expires_at) WHERE expires_at IS NOT NULL;
