-- The append journal: new entries of every member are appended here (seq is
-- the rowid, increasing), so that one commit touching many logs dirties the
-- journal's last page(s) instead of one `log` page per member. No secondary
-- index: every insert goes to the end of the table. The writer moves all rows
-- into `log` (in seq order, in the same transaction as a batch) once the
-- journal holds enough of them, and whenever the database is opened or closed.
-- Readers merge both tables; a (grp, node, idx) in both: the journal's wins.
CREATE TABLE journal (
    seq   INTEGER PRIMARY KEY,
    grp   INTEGER NOT NULL,
    node  INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    value BLOB    NOT NULL
) STRICT;
