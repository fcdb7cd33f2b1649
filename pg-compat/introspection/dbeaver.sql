-- DBeaver (PostgreSQL plugin) catalog-introspection queries, rendered for PostgreSQL 15
-- (database kalamdb, schema public, table public.t). JDBC '?' parameters substituted:
-- schema oid -> 'public'::regnamespace, table oid -> 'public.t'::regclass, names -> string literals.
-- Defaults assumed: PostgreSQL server type, read-all-data-types=false, show templates/unavailable DBs=false.

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDataSource.java
-- purpose: connect (initialize): read server version string
SELECT version();

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/PostgreUtils.java
-- purpose: connect (initialize, PG>=12): probe that pg_catalog.pg_enum exists (isMetaObjectExists(session, "pg_enum", "*"))
SELECT * FROM pg_catalog.pg_enum WHERE 1<>1 LIMIT 1;

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/PostgreUtils.java
-- purpose: connect (initialize): probe that pg_class.reltype column exists (isMetaObjectExists(session, "pg_class", "reltype"))
SELECT reltype FROM pg_catalog.pg_class WHERE 1<>1 LIMIT 1;

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDataSource.java
-- purpose: connect (initializeRemoteInstance): preload setting standard_conforming_strings via SettingCache lookup
select * from pg_catalog.pg_settings where name='standard_conforming_strings';

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDataSource.java
-- purpose: connect with "Show all databases" enabled: database list for the navigator (datallowconn, no templates, plus the configured DB)
SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE 1 = 1 AND datallowconn AND NOT datistemplate OR db.datname ='kalamdb'
ORDER BY db.datname;

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDataSource.java
-- purpose: connect with "Show all databases" enabled: determine active database name on the bootstrap connection
SELECT current_database();

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDatabase.java
-- purpose: connect / open database node: read pg_database row of the active database (readDatabaseInfo)
SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE datname='kalamdb';

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDatabase.java
-- purpose: connect (cacheDataTypes): load all base/domain/enum/composite data types into the type cache
SELECT t.oid,t.*,c.relkind,format_type(nullif(t.typbasetype, 0), t.typtypmod) as base_type_name, d.description
FROM pg_catalog.pg_type t
LEFT OUTER JOIN pg_catalog.pg_type et ON et.oid=t.typelem 
LEFT OUTER JOIN pg_catalog.pg_class c ON c.oid=t.typrelid
LEFT OUTER JOIN pg_catalog.pg_description d ON t.oid=d.objoid
WHERE t.typname IS NOT NULL
AND (c.relkind IS NULL OR c.relkind = 'c') AND (et.typcategory IS NULL OR et.typcategory <> 'C');

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDatabase.java
-- purpose: connect (cacheDataTypes -> initEnumTypesCache): load enum values
SELECT * FROM pg_catalog.pg_enum;

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreExecutionContext.java
-- purpose: connect (refreshDefaults): read default schema and session user
SELECT current_schema(),session_user;

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreExecutionContext.java
-- purpose: connect (refreshDefaults): read search_path
SHOW search_path;

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDatabase.java
-- purpose: tree: expand database kalamdb -> Schemas (SchemaCache, no filters)
SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass
 ORDER BY nspname;

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreDatabase.java
-- purpose: database properties: database comment
select description from pg_shdescription join pg_database on objoid = pg_database.oid where datname = 'kalamdb';

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreSchema.java
-- purpose: tree: expand schema public -> Tables / Views / Materialized views / Sequences / Foreign tables (TableCache, all relkinds except indexes and composite types)
SELECT c.oid,c.*,d.description,pg_catalog.pg_get_expr(c.relpartbound, c.oid) as partition_expr,  pg_catalog.pg_get_partkeydef(c.oid) as partition_key 
FROM pg_catalog.pg_class c
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass
WHERE c.relnamespace='public'::regnamespace AND c.relkind not in ('i','I','c');

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreSchema.java
-- purpose: tree: expand schema public -> Tables: load table inheritance info (cacheTableInheritance)
SELECT i.inhrelid relid, pc.relnamespace parent_ns, pc.oid parent_oid, i.inhseqno
FROM pg_catalog.pg_inherits i, pg_class rc, pg_class pc
WHERE rc.oid=i.inhrelid AND rc.relnamespace='public'::regnamespace AND pc.oid=i.inhparent;

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreSchema.java
-- purpose: tree: expand table public.t -> Columns (TableCache.prepareChildrenStatement, forTable)
SELECT c.relname,a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value,dsc.description,dep.objid
FROM pg_catalog.pg_attribute a
INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid)
LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid=ad.adrelid AND a.attnum = ad.adnum)
LEFT OUTER JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)
LEFT OUTER JOIN pg_depend dep on dep.refobjid = a.attrelid AND dep.deptype = 'i' and dep.refobjsubid = a.attnum and dep.classid = dep.refclassid
WHERE NOT a.attisdropped AND c.relkind not in ('i','I','c') AND c.oid='public.t'::regclass
ORDER BY a.attnum;

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreSchema.java
-- purpose: tree: expand table public.t -> Constraints (primary key, unique, check, foreign keys; ConstraintCache, forParent)
SELECT c.oid,c.*,t.relname as tabrelname,rt.relnamespace as refnamespace,d.description, case when c.contype='c' then "substring"(pg_get_constraintdef(c.oid), 7) else null end consrc_copy
FROM pg_catalog.pg_constraint c
INNER JOIN pg_catalog.pg_class t ON t.oid=c.conrelid
LEFT OUTER JOIN pg_catalog.pg_class rt ON rt.oid=c.confrelid
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_constraint'::regclass
WHERE c.conrelid='public.t'::regclass
ORDER BY c.oid;

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreSchema.java
-- purpose: tree: expand table public.t -> Indexes (IndexCache, forTable)
SELECT i.*,i.indkey as keys,c.relname,c.relnamespace,c.relam,c.reltablespace,tc.relname as tabrelname,dsc.description,pg_catalog.pg_get_expr(i.indpred, i.indrelid) as pred_expr,pg_catalog.pg_get_expr(i.indexprs, i.indrelid, true) as expr,pg_catalog.pg_relation_size(i.indexrelid) as index_rel_size,pg_catalog.pg_stat_get_numscans(i.indexrelid) as index_num_scans
FROM pg_catalog.pg_index i
INNER JOIN pg_catalog.pg_class c ON c.oid=i.indexrelid
INNER JOIN pg_catalog.pg_class tc ON tc.oid=i.indrelid
LEFT OUTER JOIN pg_catalog.pg_description dsc ON i.indexrelid=dsc.objoid
WHERE  i.indrelid='public.t'::regclass ORDER BY c.relname;

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreTableReal.java
-- purpose: table properties / statistics: relation sizes of public.t (readTableStatistics)
select pg_catalog.pg_total_relation_size('public.t'::regclass) as total_rel_size,pg_catalog.pg_relation_size('public.t'::regclass) as rel_size;

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreTableReal.java
-- purpose: tree: expand table public.t -> Triggers (TriggerCache)
SELECT x.oid,x.*,p.pronamespace as func_schema_id,d.description
FROM pg_catalog.pg_trigger x
LEFT OUTER JOIN pg_catalog.pg_proc p ON p.oid=x.tgfoid 
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=x.oid AND d.objsubid=0 
WHERE x.tgrelid = 'public.t'::regclass AND NOT x.tgisinternal;

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreViewBase.java
-- purpose: open view public.vt: read view definition (source tab / DDL)
SELECT pg_get_viewdef('public.vt'::regclass, true);

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreSequence.java
-- purpose: open/select sequence public.s: read sequence parameters (PG>=10, loadAdditionalInfo)
SELECT * from pg_catalog.pg_sequences WHERE schemaname='public' AND sequencename='s';

-- source: dbeaver/dbeaver@2428359b748778a5a345432906ab3da69289c20c:plugins/org.jkiss.dbeaver.ext.postgresql/src/org/jkiss/dbeaver/ext/postgresql/model/PostgreSchema.java
-- purpose: tree: expand schema public -> Functions / Procedures (ProceduresCache)
SELECT p.oid as poid,p.*,pg_catalog.pg_get_expr(p.proargdefaults, 0) as arg_defaults,d.description
FROM pg_catalog.pg_proc p
LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=p.oid and d.classoid='pg_proc'::regclass  AND d.objsubid = 0
WHERE p.pronamespace='public'::regnamespace
ORDER BY p.proname;
