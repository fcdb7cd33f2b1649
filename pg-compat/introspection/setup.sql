-- The schema every tool's queries browse: tables with a primary key, a foreign key, NOT NULL,
-- a numeric type modifier and a secondary index; a view; a sequence.
CREATE TABLE public.t (id int PRIMARY KEY, name text NOT NULL, v numeric(10,2));
CREATE TABLE public.c (id int PRIMARY KEY, t_id int REFERENCES t(id));
CREATE INDEX t_name ON t(name);
CREATE VIEW vt AS SELECT id FROM t;
CREATE SEQUENCE s;
