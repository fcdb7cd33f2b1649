-- Metabase PostgreSQL driver: catalog-introspection, sync and session queries, rendered by hand for PostgreSQL 15
-- (database kalamdb, schema public, table public.t, user postgres). HoneySQL 2 maps compiled by hand with
-- quote-style :ansi; JDBC '?' parameters inlined as literals. pgJDBC DatabaseMetaData calls are not included.

-- source: metabase/metabase@961d8c7fd45642f26d5fae500282ee66be53ed15:src/metabase/driver/sql_jdbc/connection.clj
-- purpose: 'Save'/'test connection' (sql-jdbc can-connect-with-spec?): expects one row whose single value = 1
-- note: same text in every version checked; pgjdbc executes it as a prepared statement (extended protocol)
SELECT 1;

-- source: metabase/metabase@008fd6675457cdd62da2265628bed3b725a607ea:src/metabase/driver/postgres.clj
-- purpose: driver/db-default-timezone: read the server TimeZone (sent via prepareStatement)
show timezone;

-- source: metabase/metabase@008fd6675457cdd62da2265628bed3b725a607ea:src/metabase/driver/postgres.clj
-- purpose: sql-jdbc.execute/set-timezone-sql: per-connection session time zone when a report timezone is configured ('%s' -> 'UTC')
-- note: executed by sql_jdbc/execute.clj set-time-zone-if-supported! via Statement.execute
SET SESSION TIMEZONE TO 'UTC';

-- source: metabase/metabase@008fd6675457cdd62da2265628bed3b725a607ea:src/metabase/driver/postgres.clj
-- purpose: connection impersonation (driver.sql/set-role-statement): switch to the impersonated role (role = postgres)
SET ROLE root;

-- source: metabase/metabase@008fd6675457cdd62da2265628bed3b725a607ea:src/metabase/driver/postgres.clj
-- purpose: connection impersonation: reset to the default role (default-database-role = NONE)
SET ROLE NONE;

-- source: metabase/metabase@008fd6675457cdd62da2265628bed3b725a607ea:src/metabase/driver/postgres.clj
-- purpose: sync describe-database* (get-tables-sql, schemas = ['public']): tables/views/matviews/foreign/partitioned tables with comment and n_live_tup
-- note: HoneySQL {:dialect :ansi}; the parameters ?='^pg_', ?='information_schema', ?=0, ?='public' are inlined here
SELECT "n"."nspname" AS "schema", "c"."relname" AS "name", CASE "c"."relkind" WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS "type", "d"."description" AS "description", "stat"."n_live_tup" AS "estimated_row_count" FROM "pg_catalog"."pg_class" AS "c" INNER JOIN "pg_catalog"."pg_namespace" AS "n" ON "c"."relnamespace" = "n"."oid" LEFT JOIN "pg_catalog"."pg_description" AS "d" ON ("c"."oid" = "d"."objoid") AND ("d"."objsubid" = 0) AND ("d"."classoid" = 'pg_class'::regclass) LEFT JOIN "pg_stat_user_tables" AS "stat" ON ("n"."nspname" = "stat"."schemaname") AND ("c"."relname" = "stat"."relname") WHERE ("c"."relnamespace" = "n"."oid") AND ("n"."nspname" !~ '^pg_') AND ("n"."nspname" <> 'information_schema') AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND ("n"."nspname" IN ('public')) ORDER BY "type" ASC, "schema" ASC, "name" ASC;

-- source: metabase/metabase@008fd6675457cdd62da2265628bed3b725a607ea:src/metabase/driver/postgres.clj
-- purpose: sync describe-database (have-privilege-fn, feature :table-privileges): current user's select/insert/update/delete privileges on every table/view/matview
-- note: uses SQL keywords (table, update, select, insert, delete) as unquoted column aliases
with table_privileges as (
 select
   NULL as role,
   t.schemaname as schema,
   t.objectname as table,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'update') as update,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'select') as select,
   pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'insert') as insert,
   pg_catalog.has_table_privilege(     current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'delete') as delete
 from (
   select schemaname, tablename as objectname from pg_catalog.pg_tables
   union
   select schemaname, viewname as objectname from pg_catalog.pg_views
   union
   select schemaname, matviewname as objectname from pg_catalog.pg_matviews
 ) t
 where t.schemaname !~ '^pg_'
   and t.schemaname <> 'information_schema'
   and pg_catalog.has_schema_privilege(current_user, t.schemaname, 'usage')
)
select t.*
from table_privileges t;

-- source: metabase/metabase@370249b52907c64fb32de3739c1b2136abd9e960:src/metabase/driver/postgres.clj
-- purpose: older releases (about v0.49): same table-privileges query, using has_table_privilege and no identifier escaping
with table_privileges as (
 select
   NULL as role,
   t.schemaname as schema,
   t.objectname as table,
   pg_catalog.has_table_privilege(current_user, '"' || t.schemaname || '"' || '.' || '"' || t.objectname || '"',  'update') as update,
   pg_catalog.has_table_privilege(current_user, '"' || t.schemaname || '"' || '.' || '"' || t.objectname || '"',  'select') as select,
   pg_catalog.has_table_privilege(current_user, '"' || t.schemaname || '"' || '.' || '"' || t.objectname || '"',  'insert') as insert,
   pg_catalog.has_table_privilege(current_user, '"' || t.schemaname || '"' || '.' || '"' || t.objectname || '"',  'delete') as delete
 from (
   select schemaname, tablename as objectname from pg_catalog.pg_tables
   union
   select schemaname, viewname as objectname from pg_catalog.pg_views
   union
   select schemaname, matviewname as objectname from pg_catalog.pg_matviews
 ) t
 where t.schemaname !~ '^pg_'
   and t.schemaname <> 'information_schema'
   and pg_catalog.has_schema_privilege(current_user, t.schemaname, 'usage')
)
select t.*
from table_privileges t;

-- source: metabase/metabase@00f84ab8adde06abf9ac93e22f7d6dbbf5e089de:src/metabase/driver/sql_jdbc/sync/describe_database.clj
-- purpose: SELECT-privilege probe (have-select-privilege?): used for FOREIGN TABLEs on postgres, or for every table when :table-privileges is unsupported
-- note: executed as a prepared statement with a 15 s query timeout
SELECT TRUE AS "_" FROM "public"."t" WHERE 1 <> 1 LIMIT 0;

-- source: metabase/metabase@008fd6675457cdd62da2265628bed3b725a607ea:src/metabase/driver/postgres.clj
-- purpose: sync fields (driver/describe-fields -> describe-fields-sql, schema-names ['public'], table-names ['t']): columns, type, position, pk?, comment, required, auto-increment; 2nd branch covers materialized views
-- note: HoneySQL :dialect :ansi (quoted identifiers, kebab-case aliases kept); params inlined
SELECT "c"."column_name" AS "name", CASE WHEN "c"."udt_schema" IN ('public', 'pg_catalog') THEN FORMAT('%s', "c"."udt_name") ELSE FORMAT('"%s"."%s"', "c"."udt_schema", "c"."udt_name") END AS "database-type", "c"."ordinal_position" - 1 AS "database-position", "c"."table_schema" AS "table-schema", "c"."table_name" AS "table-name", "pk"."column_name" IS NOT NULL AS "pk?", COL_DESCRIPTION(CAST(CAST(FORMAT('%I.%I', CAST("c"."table_schema" AS TEXT), CAST("c"."table_name" AS TEXT)) AS REGCLASS) AS OID), "c"."ordinal_position") AS "field-comment", (("column_default" IS NULL) OR (LOWER("column_default") = 'null')) AND ("is_nullable" = 'NO') AND NOT ((("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO')) AS "database-required", (("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO') AS "database-is-auto-increment" FROM "information_schema"."columns" AS "c" LEFT JOIN (SELECT "tc"."table_schema", "tc"."table_name", "kc"."column_name" FROM "information_schema"."table_constraints" AS "tc" INNER JOIN "information_schema"."key_column_usage" AS "kc" ON ("tc"."constraint_name" = "kc"."constraint_name") AND ("tc"."table_schema" = "kc"."table_schema") AND ("tc"."table_name" = "kc"."table_name") WHERE "tc"."constraint_type" = 'PRIMARY KEY') AS "pk" ON ("c"."table_schema" = "pk"."table_schema") AND ("c"."table_name" = "pk"."table_name") AND ("c"."column_name" = "pk"."column_name") WHERE c.table_schema !~ '^information_schema|catalog_history|pg_' AND ("c"."table_schema" IN ('public')) AND ("c"."table_name" IN ('t')) UNION ALL SELECT "pa"."attname" AS "name", CASE WHEN "ptn"."nspname" IN ('public', 'pg_catalog') THEN FORMAT('%s', "pt"."typname") ELSE FORMAT('"%s"."%s"', "ptn"."nspname", "pt"."typname") END AS "database-type", "pa"."attnum" - 1 AS "database-position", "pn"."nspname" AS "table-schema", "pc"."relname" AS "table-name", FALSE AS "pk?", NULL AS "field-comment", FALSE AS "database-required", FALSE AS "database-is-auto-increment" FROM "pg_catalog"."pg_class" AS "pc" INNER JOIN "pg_catalog"."pg_namespace" AS "pn" ON "pn"."oid" = "pc"."relnamespace" INNER JOIN "pg_catalog"."pg_attribute" AS "pa" ON "pa"."attrelid" = "pc"."oid" INNER JOIN "pg_catalog"."pg_type" AS "pt" ON "pt"."oid" = "pa"."atttypid" INNER JOIN "pg_catalog"."pg_namespace" AS "ptn" ON "ptn"."oid" = "pt"."typnamespace" WHERE ("pc"."relkind" = 'm') AND ("pa"."attnum" >= 1) AND ("pn"."nspname" IN ('public')) AND ("pc"."relname" IN ('t')) ORDER BY "table-schema" ASC, "table-name" ASC, "database-position" ASC;

-- source: metabase/metabase@008fd6675457cdd62da2265628bed3b725a607ea:src/metabase/driver/postgres.clj
-- purpose: sync fields, schema filter only (describe-fields-sql with schema-names ['public'] and no table-names)
SELECT "c"."column_name" AS "name", CASE WHEN "c"."udt_schema" IN ('public', 'pg_catalog') THEN FORMAT('%s', "c"."udt_name") ELSE FORMAT('"%s"."%s"', "c"."udt_schema", "c"."udt_name") END AS "database-type", "c"."ordinal_position" - 1 AS "database-position", "c"."table_schema" AS "table-schema", "c"."table_name" AS "table-name", "pk"."column_name" IS NOT NULL AS "pk?", COL_DESCRIPTION(CAST(CAST(FORMAT('%I.%I', CAST("c"."table_schema" AS TEXT), CAST("c"."table_name" AS TEXT)) AS REGCLASS) AS OID), "c"."ordinal_position") AS "field-comment", (("column_default" IS NULL) OR (LOWER("column_default") = 'null')) AND ("is_nullable" = 'NO') AND NOT ((("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO')) AS "database-required", (("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO') AS "database-is-auto-increment" FROM "information_schema"."columns" AS "c" LEFT JOIN (SELECT "tc"."table_schema", "tc"."table_name", "kc"."column_name" FROM "information_schema"."table_constraints" AS "tc" INNER JOIN "information_schema"."key_column_usage" AS "kc" ON ("tc"."constraint_name" = "kc"."constraint_name") AND ("tc"."table_schema" = "kc"."table_schema") AND ("tc"."table_name" = "kc"."table_name") WHERE "tc"."constraint_type" = 'PRIMARY KEY') AS "pk" ON ("c"."table_schema" = "pk"."table_schema") AND ("c"."table_name" = "pk"."table_name") AND ("c"."column_name" = "pk"."column_name") WHERE c.table_schema !~ '^information_schema|catalog_history|pg_' AND ("c"."table_schema" IN ('public')) UNION ALL SELECT "pa"."attname" AS "name", CASE WHEN "ptn"."nspname" IN ('public', 'pg_catalog') THEN FORMAT('%s', "pt"."typname") ELSE FORMAT('"%s"."%s"', "ptn"."nspname", "pt"."typname") END AS "database-type", "pa"."attnum" - 1 AS "database-position", "pn"."nspname" AS "table-schema", "pc"."relname" AS "table-name", FALSE AS "pk?", NULL AS "field-comment", FALSE AS "database-required", FALSE AS "database-is-auto-increment" FROM "pg_catalog"."pg_class" AS "pc" INNER JOIN "pg_catalog"."pg_namespace" AS "pn" ON "pn"."oid" = "pc"."relnamespace" INNER JOIN "pg_catalog"."pg_attribute" AS "pa" ON "pa"."attrelid" = "pc"."oid" INNER JOIN "pg_catalog"."pg_type" AS "pt" ON "pt"."oid" = "pa"."atttypid" INNER JOIN "pg_catalog"."pg_namespace" AS "ptn" ON "ptn"."oid" = "pt"."typnamespace" WHERE ("pc"."relkind" = 'm') AND ("pa"."attnum" >= 1) AND ("pn"."nspname" IN ('public')) ORDER BY "table-schema" ASC, "table-name" ASC, "database-position" ASC;

-- source: metabase/metabase@008fd6675457cdd62da2265628bed3b725a607ea:src/metabase/driver/postgres.clj
-- purpose: sync fields pre-process (describe-fields-pre-process-xf / dynamic-database-types-lookup -> enum-types): names of enum types
SELECT nspname, typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid IN (SELECT DISTINCT enumtypid FROM pg_enum e);

-- source: metabase/metabase@008fd6675457cdd62da2265628bed3b725a607ea:src/metabase/driver/postgres.clj
-- purpose: sync FKs (driver/describe-fks -> describe-fks-sql, table-names ['t'], schema-names ['public'])
SELECT "fk_ns"."nspname" AS "fk-table-schema", "fk_table"."relname" AS "fk-table-name", "fk_column"."attname" AS "fk-column-name", "pk_ns"."nspname" AS "pk-table-schema", "pk_table"."relname" AS "pk-table-name", "pk_column"."attname" AS "pk-column-name" FROM "pg_constraint" AS "c" INNER JOIN "pg_class" AS "fk_table" ON "c"."conrelid" = "fk_table"."oid" INNER JOIN "pg_namespace" AS "fk_ns" ON "c"."connamespace" = "fk_ns"."oid" INNER JOIN "pg_attribute" AS "fk_column" ON "c"."conrelid" = "fk_column"."attrelid" INNER JOIN "pg_class" AS "pk_table" ON "c"."confrelid" = "pk_table"."oid" INNER JOIN "pg_namespace" AS "pk_ns" ON "pk_table"."relnamespace" = "pk_ns"."oid" INNER JOIN "pg_attribute" AS "pk_column" ON "c"."confrelid" = "pk_column"."attrelid" WHERE fk_ns.nspname !~ '^information_schema|catalog_history|pg_' AND ("c"."contype" = 'f'::char) AND ("fk_column"."attnum" = ANY(c.conkey)) AND ("pk_column"."attnum" = ANY(c.confkey)) AND ("fk_table"."relname" IN ('t')) AND ("fk_ns"."nspname" IN ('public')) ORDER BY "fk-table-schema" ASC, "fk-table-name" ASC;

-- source: metabase/metabase@008fd6675457cdd62da2265628bed3b725a607ea:src/metabase/driver/postgres.clj
-- purpose: sync FKs, schema filter only (finds c.t_id -> t.id)
SELECT "fk_ns"."nspname" AS "fk-table-schema", "fk_table"."relname" AS "fk-table-name", "fk_column"."attname" AS "fk-column-name", "pk_ns"."nspname" AS "pk-table-schema", "pk_table"."relname" AS "pk-table-name", "pk_column"."attname" AS "pk-column-name" FROM "pg_constraint" AS "c" INNER JOIN "pg_class" AS "fk_table" ON "c"."conrelid" = "fk_table"."oid" INNER JOIN "pg_namespace" AS "fk_ns" ON "c"."connamespace" = "fk_ns"."oid" INNER JOIN "pg_attribute" AS "fk_column" ON "c"."conrelid" = "fk_column"."attrelid" INNER JOIN "pg_class" AS "pk_table" ON "c"."confrelid" = "pk_table"."oid" INNER JOIN "pg_namespace" AS "pk_ns" ON "pk_table"."relnamespace" = "pk_ns"."oid" INNER JOIN "pg_attribute" AS "pk_column" ON "c"."confrelid" = "pk_column"."attrelid" WHERE fk_ns.nspname !~ '^information_schema|catalog_history|pg_' AND ("c"."contype" = 'f'::char) AND ("fk_column"."attnum" = ANY(c.conkey)) AND ("pk_column"."attnum" = ANY(c.confkey)) AND ("fk_ns"."nspname" IN ('public')) ORDER BY "fk-table-schema" ASC, "fk-table-name" ASC;

-- source: metabase/metabase@008fd6675457cdd62da2265628bed3b725a607ea:src/metabase/driver/postgres.clj
-- purpose: sync indexes (driver/describe-indexes -> describe-indexes-sql, schema ['public'], table ['t']): first column of each non-partial index
-- note: HoneySQL renders function names upper-case; _pg_expandarray is an information_schema internal function returning (x, n)
SELECT "tmp"."table-schema", "tmp"."table-name", TRIM(BOTH '"' FROM PG_CATALOG.PG_GET_INDEXDEF("tmp"."ci_oid", "tmp"."pos", FALSE)) AS "field-name" FROM (SELECT "n"."nspname" AS "table-schema", "ct"."relname" AS "table-name", "ci"."oid" AS "ci_oid", (INFORMATION_SCHEMA._PG_EXPANDARRAY("i"."indkey"))."n" AS "pos" FROM "pg_catalog"."pg_class" AS "ct" INNER JOIN "pg_catalog"."pg_namespace" AS "n" ON "ct"."relnamespace" = "n"."oid" INNER JOIN "pg_catalog"."pg_index" AS "i" ON "ct"."oid" = "i"."indrelid" INNER JOIN "pg_catalog"."pg_class" AS "ci" ON "ci"."oid" = "i"."indexrelid" WHERE (PG_CATALOG.PG_GET_EXPR("i"."indpred", "i"."indrelid") IS NULL) AND n.nspname !~ '^information_schema|catalog_history|pg_' AND ("n"."nspname" IN ('public')) AND ("ct"."relname" IN ('t'))) AS "tmp" WHERE "tmp"."pos" = 1;

-- source: metabase/metabase@00c37c6669cda403ee73601d8d7c8b2926d3de42:src/metabase/driver/sql_jdbc/sync/describe_table.clj
-- purpose: fallback column metadata (fallback-metadata-query) when JDBC getColumns returns no type info; on postgres only reached via describe-table-fields (JSON unfolding)
SELECT * FROM "public"."t" WHERE 1 <> 1 LIMIT 0;

-- source: metabase/metabase@f5388e61e4505d29d527e1757ffc0e51f4aeebb1:src/metabase/driver/postgres/ddl.clj
-- purpose: model persistence (set-statement-timeout!): read current statement_timeout before refresh/check
-- note: HoneySQL {:quoted false}; param 'statement_timeout' inlined
SELECT setting FROM pg_settings WHERE name = 'statement_timeout';

-- source: metabase/metabase@f5388e61e4505d29d527e1757ffc0e51f4aeebb1:src/metabase/driver/postgres/ddl.clj
-- purpose: model persistence: cap statement_timeout to 10 minutes inside the refresh transaction
-- note: meant to run inside a transaction; outside one PostgreSQL only warns
SET LOCAL statement_timeout TO '600000';

-- source: metabase/metabase@f5388e61e4505d29d527e1757ffc0e51f4aeebb1:src/metabase/driver/postgres/ddl.clj
-- purpose: model persistence check (check-can-persist): list existing schemas
select schema_name from information_schema.schemata;

-- source: metabase/metabase@c17e8966fc903c0f71945bc5503c05e94b9241b9:src/metabase/driver/postgres/actions.clj
-- purpose: actions: map a unique-constraint violation to column names (constraint->column-names, constraint = t_pkey)
select column_name from information_schema.constraint_column_usage where constraint_name = 't_pkey';

-- source: metabase/metabase@0b279e37b0b594c49658d32247e44e03ee8432e9:src/metabase/driver/postgres_routines.clj
-- purpose: describe-routines (only in this commit's branch, feature :describe-routines): server version check
SELECT current_setting('server_version_num')::int as version;

-- source: metabase/metabase@0b279e37b0b594c49658d32247e44e03ee8432e9:src/metabase/driver/postgres_routines.clj
-- purpose: describe-routines (branch only): functions/procedures with parameters as JSON; PG >= 11 form, schema-names ['public']
-- note: several set-returning functions in one SELECT list; json_agg(... ORDER BY ...) FILTER (WHERE ...)
WITH filtered_routines AS (
                                 SELECT p.oid, p.proname, p.pronamespace, p.prosrc, p.pronargs,
                                        p.proargtypes, p.proallargtypes, p.proargnames, p.proargmodes,
                                        p.prokind,
                                        CASE WHEN p.prokind = 'p' THEN 'procedure' ELSE 'function' END AS routine_type
                                 FROM pg_proc p
                                 JOIN pg_namespace n ON n.oid = p.pronamespace
                                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prokind IN ('f', 'p') AND n.nspname IN ('public')
                               ),
                               routine_params AS (
                                 SELECT 
                                   p.oid AS routine_oid,
                                   unnest(COALESCE(p.proallargtypes::int[], p.proargtypes::int[])) AS type_oid,
                                   unnest(COALESCE(p.proargnames::text[], 
                                           ARRAY(SELECT 'arg' || generate_series(1, array_length(p.proargtypes, 1))))) AS param_name,
                                   unnest(COALESCE(p.proargmodes::text[], 
                                           array_fill('i'::text, ARRAY[COALESCE(array_length(p.proargtypes, 1), 0)]))) AS param_mode,
                                   generate_series(1, 
                                     GREATEST(
                                       COALESCE(array_length(p.proallargtypes, 1), 0),
                                       COALESCE(array_length(p.proargtypes, 1), 0)
                                     )) AS param_position
                                 FROM filtered_routines p
                               ),
                               param_types AS (
                                 SELECT 
                                   rp.routine_oid,
                                   rp.param_name,
                                   rp.param_mode,
                                   rp.param_position,
                                   CASE 
                                     WHEN t.typelem != 0 AND t.typlen = -1 THEN te.typname || '[]'
                                     ELSE t.typname
                                   END AS data_type
                                 FROM routine_params rp
                                 JOIN pg_type t ON t.oid = rp.type_oid
                                 LEFT JOIN pg_type te ON te.oid = t.typelem
                               )
                               SELECT p.oid,
                                      p.proname AS name,
                                      n.nspname AS schema,
                                      p.routine_type,
                                      pd.description AS description,
                                      p.prosrc AS definition,
                                      pg_get_function_result(p.oid) AS return_type,
                                      p.pronargs AS arg_count,
                                      COALESCE(
                                        json_agg(
                                          json_build_object(
                                            'name', pt.param_name,
                                            'mode', CASE pt.param_mode 
                                                     WHEN 'i' THEN 'IN'
                                                     WHEN 'o' THEN 'OUT'
                                                     WHEN 'b' THEN 'INOUT'
                                                     WHEN 'v' THEN 'VARIADIC'
                                                     WHEN 't' THEN 'TABLE'
                                                   END,
                                            'type', pt.data_type,
                                            'position', pt.param_position
                                          ) ORDER BY pt.param_position
                                        ) FILTER (WHERE pt.routine_oid IS NOT NULL),
                                        '[]'::json
                                      ) AS parameters
                               FROM filtered_routines p
                               JOIN pg_namespace n ON n.oid = p.pronamespace
                               LEFT JOIN pg_description pd ON pd.objoid = p.oid AND pd.objsubid = 0
                               LEFT JOIN param_types pt ON pt.routine_oid = p.oid
                               GROUP BY p.oid, p.proname, n.nspname, p.routine_type, pd.description, p.prosrc, p.pronargs;
