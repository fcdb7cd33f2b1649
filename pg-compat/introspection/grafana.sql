-- Grafana PostgreSQL data source: catalog-introspection / metadata queries, rendered by hand for PostgreSQL 15
-- (database kalamdb, schema public, table public.t, user postgres). Template parameters substituted as literals.
-- Current plugin = public/app/plugins/datasource/grafana-postgresql-datasource (Grafana 10+), backend pkg/tsdb/grafana-postgresql-datasource;
-- 'legacy' = public/app/plugins/datasource/postgres (Grafana 7-9). Frontend meta queries reach the server via /api/ds/query.

-- source: grafana/grafana@12f912ab8d010f4d95a4043a0efaa20fc4ca0100:public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts
-- purpose: config page auto-detect (useAutoDetectFeatures.ts -> datasource.getVersion): server version as int major*100+minor
-- note: runs through QueryData: pgx PgConn().Exec (simple query protocol), format=table
SELECT current_setting('server_version_num')::int/100 as version;

-- source: grafana/grafana@12f912ab8d010f4d95a4043a0efaa20fc4ca0100:public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts
-- purpose: config page auto-detect (datasource.getTimescaleDBVersion, only if version >= 906): is timescaledb installed
SELECT extversion FROM pg_extension WHERE extname = 'timescaledb';

-- source: grafana/grafana@12f912ab8d010f4d95a4043a0efaa20fc4ca0100:public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts
-- purpose: query builder: list schemas (showSchemas)
SELECT schema_name AS "name"
    FROM information_schema.schemata
    WHERE schema_name NOT IN ('information_schema',
                              'pg_catalog',
                              'pg_toast',
                              '_timescaledb_cache',
                              '_timescaledb_catalog',
                              '_timescaledb_internal',
                              '_timescaledb_config',
                              'timescaledb_information',
                              'timescaledb_experimental')
    ORDER BY schema_name;

-- source: grafana/grafana@12f912ab8d010f4d95a4043a0efaa20fc4ca0100:public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts
-- purpose: query builder: list tables of a chosen schema (showTables(schema)); schema = public
SELECT quote_ident(table_name) AS "table"
      FROM information_schema.tables
      WHERE quote_ident(table_schema) = 'public'
      ORDER BY 1;

-- source: grafana/grafana@12f912ab8d010f4d95a4043a0efaa20fc4ca0100:public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts
-- purpose: query builder / SQL autocompletion: list tables, search_path schemas first, unqualified (fetchTables -> showTables())
SELECT
    CASE WHEN 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )
      THEN quote_ident(table_name)
      ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
    END AS "table"
    FROM information_schema.tables
    WHERE quote_ident(table_schema) NOT IN ('information_schema',
                             'pg_catalog',
                             '_timescaledb_cache',
                             '_timescaledb_catalog',
                             '_timescaledb_internal',
                             '_timescaledb_config',
                             'timescaledb_information',
                             'timescaledb_experimental')
    ORDER BY CASE WHEN 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          ) THEN 0 ELSE 1 END, 1;

-- source: grafana/grafana@12f912ab8d010f4d95a4043a0efaa20fc4ca0100:public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts
-- purpose: query builder / autocompletion: columns and types of table t (fetchFields -> getSchema('t'))
SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident('t'),1) = 2
        THEN quote_ident(table_schema) = (parse_ident('t'))[1]
          AND quote_ident(table_name) = (parse_ident('t'))[2]
        ELSE quote_ident(table_name) = 't'
          AND 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )
      END;

-- source: grafana/grafana@12f912ab8d010f4d95a4043a0efaa20fc4ca0100:public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts
-- purpose: query builder / autocompletion: columns and types of schema-qualified table (getSchema('public.t'))
SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident('public.t'),1) = 2
        THEN quote_ident(table_schema) = (parse_ident('public.t'))[1]
          AND quote_ident(table_name) = (parse_ident('public.t'))[2]
        ELSE quote_ident(table_name) = 'public.t'
          AND 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )
      END;

-- source: grafana/grafana@eb607c510fe9fe93ca209a4ca48935321fcd363f:public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts
-- purpose: older plugin revision: same showTables() text, kept to document it is unchanged across revisions
-- note: identical to the 12f912ab text; the older revision lacks showSchemas/showTables(schema)
SELECT
    CASE WHEN 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )
      THEN quote_ident(table_name)
      ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
    END AS "table"
    FROM information_schema.tables
    WHERE quote_ident(table_schema) NOT IN ('information_schema',
                             'pg_catalog',
                             '_timescaledb_cache',
                             '_timescaledb_catalog',
                             '_timescaledb_internal',
                             '_timescaledb_config',
                             'timescaledb_information',
                             'timescaledb_experimental')
    ORDER BY CASE WHEN 
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          ) THEN 0 ELSE 1 END, 1;

-- source: grafana/grafana@043dd88a47944c35205994c4da317e100dc9b12e:pkg/tsdb/grafana-postgresql-datasource/schema.go
-- purpose: backend schema API (Schema/Tables/TableParameterValues): list schemas
SELECT schema_name FROM information_schema.schemata
		 WHERE schema_name NOT LIKE 'pg_%' AND schema_name != 'information_schema'
		 ORDER BY schema_name;

-- source: grafana/grafana@043dd88a47944c35205994c4da317e100dc9b12e:pkg/tsdb/grafana-postgresql-datasource/schema.go
-- purpose: backend schema API: list tables and views of a schema; $1 = 'public' substituted (pgx sends it as an extended-protocol parameter)
SELECT table_name FROM information_schema.tables
		 WHERE table_schema = 'public' AND table_type IN ('BASE TABLE', 'VIEW')
		 ORDER BY table_name;

-- source: grafana/grafana@043dd88a47944c35205994c4da317e100dc9b12e:pkg/tsdb/grafana-postgresql-datasource/schema.go
-- purpose: backend schema API: columns with types and numeric precision/scale; $1 = 'public', $2 = 't' substituted
SELECT column_name, data_type, udt_name, numeric_precision, numeric_scale
		 FROM information_schema.columns
		 WHERE table_schema = 'public' AND table_name = 't'
		 ORDER BY ordinal_position;

-- source: grafana/grafana@043dd88a47944c35205994c4da317e100dc9b12e:pkg/tsdb/grafana-postgresql-datasource/schema.go
-- purpose: backend schema API (ColumnValues): up to 100 distinct values per column, columns id and name of public.t
SELECT 'id' AS col_name, "id"::text AS val FROM (SELECT DISTINCT "id" FROM "public"."t" WHERE "id" IS NOT NULL ORDER BY "id" LIMIT 100) sub_0 UNION ALL SELECT 'name' AS col_name, "name"::text AS val FROM (SELECT DISTINCT "name" FROM "public"."t" WHERE "name" IS NOT NULL ORDER BY "name" LIMIT 100) sub_1;

-- source: jackc/pgx@HEAD:pgconn/pgconn.go (PgConn.Ping, called from grafana/grafana@1b13755cdccfbc5420c9fcb7d6cf2dad7b2888e6:pkg/tsdb/grafana-postgresql-datasource/pgx/handler_checkhealth.go via pool.Ping)
-- purpose: 'Save & test' health check (pgx backend): the wire text is exactly "-- ping" (comment-only simple query -> EmptyQueryResponse)
-- note: the trailing ';' is only for this file's format; pgx sends the 6 bytes '-- ping' with no semicolon
-- ping
;

-- source: lib/pq@HEAD:conn_go18.go (conn.Ping, called from grafana/grafana@0c059270ae12a6b64819f9b818dff64cd98a5276:pkg/tsdb/grafana-postgresql-datasource/sqleng/handler_checkhealth.go via database/sql Ping)
-- purpose: 'Save & test' health check (older lib/pq backend): empty statement -> EmptyQueryResponse
;

-- source: grafana/grafana@01b1f535cf41940561256c90d7f4ba563d83ae01:public/app/plugins/datasource/postgres/datasource.ts
-- purpose: legacy 'Save & test' (testDatasource) meta request
SELECT 1;

-- source: grafana/grafana@01b1f535cf41940561256c90d7f4ba563d83ae01:public/app/plugins/datasource/postgres/datasource.ts
-- purpose: legacy config page version detection (no column alias)
SELECT current_setting('server_version_num')::int/100;

-- source: grafana/grafana@01b1f535cf41940561256c90d7f4ba563d83ae01:public/app/plugins/datasource/postgres/datasource.ts
-- purpose: legacy timescaledb detection
SELECT extversion FROM pg_extension WHERE extname = 'timescaledb';

-- source: grafana/grafana@027e669f230fd8228b4376f13363058b5bcd2f35:public/app/plugins/datasource/postgres/meta_query.ts
-- purpose: legacy visual query builder: pick a default table with a timestamp(tz) column and a float8 column (findMetricTable)
SELECT
	quote_ident(table_name) as table_name,
	( SELECT
	    quote_ident(column_name) as column_name
	  FROM information_schema.columns c
    WHERE
      c.table_schema = t.table_schema AND
      c.table_name = t.table_name AND
      udt_name IN ('timestamptz','timestamp')
    ORDER BY ordinal_position LIMIT 1
  ) AS time_column,
  ( SELECT
      quote_ident(column_name) AS column_name
    FROM information_schema.columns c
    WHERE
      c.table_schema = t.table_schema AND
      c.table_name = t.table_name AND
      udt_name='float8'
    ORDER BY ordinal_position LIMIT 1
  ) AS value_column
FROM information_schema.tables t
WHERE 
table_schema IN (
  SELECT
    CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
  FROM
    generate_series(
      array_lower(string_to_array(current_setting('search_path'),','),1),
      array_upper(string_to_array(current_setting('search_path'),','),1)
    ) as i,
    string_to_array(current_setting('search_path'),',') s
) AND
  EXISTS
  ( SELECT 1
    FROM information_schema.columns c
    WHERE
      c.table_schema = t.table_schema AND
      c.table_name = t.table_name AND
      udt_name IN ('timestamptz','timestamp')
  ) AND
  EXISTS
  ( SELECT 1
    FROM information_schema.columns c
    WHERE
      c.table_schema = t.table_schema AND
      c.table_name = t.table_name AND
      udt_name='float8'
  )
LIMIT 1
;

-- source: grafana/grafana@027e669f230fd8228b4376f13363058b5bcd2f35:public/app/plugins/datasource/postgres/meta_query.ts
-- purpose: legacy visual query builder: table dropdown (buildTableQuery)
SELECT quote_ident(table_name) FROM information_schema.tables WHERE 
table_schema IN (
  SELECT
    CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
  FROM
    generate_series(
      array_lower(string_to_array(current_setting('search_path'),','),1),
      array_upper(string_to_array(current_setting('search_path'),','),1)
    ) as i,
    string_to_array(current_setting('search_path'),',') s
) ORDER BY table_name;

-- source: grafana/grafana@027e669f230fd8228b4376f13363058b5bcd2f35:public/app/plugins/datasource/postgres/meta_query.ts
-- purpose: legacy visual query builder: time column dropdown for table t (buildColumnQuery('time'))
SELECT quote_ident(column_name) FROM information_schema.columns WHERE 
table_schema IN (
  SELECT
    CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
  FROM
    generate_series(
      array_lower(string_to_array(current_setting('search_path'),','),1),
      array_upper(string_to_array(current_setting('search_path'),','),1)
    ) as i,
    string_to_array(current_setting('search_path'),',') s
) AND table_name = 't' AND data_type IN ('timestamp without time zone','timestamp with time zone','bigint','integer','double precision','real') ORDER BY column_name;

-- source: grafana/grafana@027e669f230fd8228b4376f13363058b5bcd2f35:public/app/plugins/datasource/postgres/meta_query.ts
-- purpose: legacy visual query builder: metric column dropdown (buildColumnQuery('metric'))
SELECT quote_ident(column_name) FROM information_schema.columns WHERE 
table_schema IN (
  SELECT
    CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
  FROM
    generate_series(
      array_lower(string_to_array(current_setting('search_path'),','),1),
      array_upper(string_to_array(current_setting('search_path'),','),1)
    ) as i,
    string_to_array(current_setting('search_path'),',') s
) AND table_name = 't' AND data_type IN ('text','character','character varying') ORDER BY column_name;

-- source: grafana/grafana@027e669f230fd8228b4376f13363058b5bcd2f35:public/app/plugins/datasource/postgres/meta_query.ts
-- purpose: legacy visual query builder: value column dropdown, time column 'time' excluded (buildColumnQuery('value'))
SELECT quote_ident(column_name) FROM information_schema.columns WHERE 
table_schema IN (
  SELECT
    CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
  FROM
    generate_series(
      array_lower(string_to_array(current_setting('search_path'),','),1),
      array_upper(string_to_array(current_setting('search_path'),','),1)
    ) as i,
    string_to_array(current_setting('search_path'),',') s
) AND table_name = 't' AND data_type IN ('bigint','integer','double precision','real','numeric') AND column_name <> 'time' ORDER BY column_name;

-- source: grafana/grafana@027e669f230fd8228b4376f13363058b5bcd2f35:public/app/plugins/datasource/postgres/meta_query.ts
-- purpose: legacy visual query builder: group-by column dropdown (buildColumnQuery('group'))
SELECT quote_ident(column_name) FROM information_schema.columns WHERE 
table_schema IN (
  SELECT
    CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
  FROM
    generate_series(
      array_lower(string_to_array(current_setting('search_path'),','),1),
      array_upper(string_to_array(current_setting('search_path'),','),1)
    ) as i,
    string_to_array(current_setting('search_path'),',') s
) AND table_name = 't' AND data_type IN ('text','character','character varying','uuid') ORDER BY column_name;

-- source: grafana/grafana@027e669f230fd8228b4376f13363058b5bcd2f35:public/app/plugins/datasource/postgres/meta_query.ts
-- purpose: legacy visual query builder: any column (buildColumnQuery() with no type)
SELECT quote_ident(column_name) FROM information_schema.columns WHERE 
table_schema IN (
  SELECT
    CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
  FROM
    generate_series(
      array_lower(string_to_array(current_setting('search_path'),','),1),
      array_upper(string_to_array(current_setting('search_path'),','),1)
    ) as i,
    string_to_array(current_setting('search_path'),',') s
) AND table_name = 't' ORDER BY column_name;

-- source: grafana/grafana@027e669f230fd8228b4376f13363058b5bcd2f35:public/app/plugins/datasource/postgres/meta_query.ts
-- purpose: legacy visual query builder: schema-qualified table public.t, time columns (buildTableConstraint with '.')
SELECT quote_ident(column_name) FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 't' AND data_type IN ('timestamp without time zone','timestamp with time zone','bigint','integer','double precision','real') ORDER BY column_name;

-- source: grafana/grafana@027e669f230fd8228b4376f13363058b5bcd2f35:public/app/plugins/datasource/postgres/meta_query.ts
-- purpose: legacy visual query builder: udt_name of column name (buildDatatypeQuery) to choose WHERE operators
SELECT udt_name FROM information_schema.columns WHERE 
table_schema IN (
  SELECT
    CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
  FROM
    generate_series(
      array_lower(string_to_array(current_setting('search_path'),','),1),
      array_upper(string_to_array(current_setting('search_path'),','),1)
    ) as i,
    string_to_array(current_setting('search_path'),',') s
) AND table_name = 't' AND column_name = 'name';

-- source: grafana/grafana@027e669f230fd8228b4376f13363058b5bcd2f35:public/app/plugins/datasource/postgres/meta_query.ts
-- purpose: legacy visual query builder: aggregate functions list (buildAggregateQuery)
SELECT DISTINCT proname FROM pg_aggregate INNER JOIN pg_proc ON pg_aggregate.aggfnoid = pg_proc.oid INNER JOIN pg_type ON pg_type.oid=pg_proc.prorettype WHERE pronargs=1 AND typname IN ('float8') AND aggkind='n' ORDER BY 1;
