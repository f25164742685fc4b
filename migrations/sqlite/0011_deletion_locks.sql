-- Nothing to change on SQLite: PostgreSQL's 0011 weakens a row lock, and
-- SQLite's writers hold the whole database one at a time. This file keeps
-- the two backends' migrations numbered alike.
SELECT 1;
