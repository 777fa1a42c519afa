-- RaftKV multi-raft log store: every (group, node) member has its own log in
-- these tables. Values are checksummed records of raftkv_core::storage::codec.

-- One row per stored log entry: value = codec::encode_entry (the index is the key).
CREATE TABLE log (
    grp   INTEGER NOT NULL,
    node  INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    value BLOB    NOT NULL,
    PRIMARY KEY (grp, node, idx)
) STRICT, WITHOUT ROWID;

-- One row per member that saved a hard state or purged its log:
-- hard_state = codec::encode_hard_state (NULL until first saved),
-- purged = last purged index (the first stored index is purged + 1).
CREATE TABLE meta (
    grp        INTEGER NOT NULL,
    node       INTEGER NOT NULL,
    hard_state BLOB,
    purged     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (grp, node)
) STRICT, WITHOUT ROWID;
