-- Event bodies move out of the events table. SQLite rewrites a whole row, overflow pages
-- included, on every UPDATE, so marking an event processed rewrote its 2–8 KB body: the
-- workers' bookkeeping cost as much disk as receiving the event. The status row stays small;
-- the body is written once. Keyed by the event's id (the rowid: no extra index).
CREATE TABLE event_bodies (
    event INTEGER PRIMARY KEY,
    body  BLOB    NOT NULL
);
INSERT INTO event_bodies (event, body) SELECT id, body FROM events;
ALTER TABLE events DROP COLUMN body;
