"""Migration tools against a running KalamDB (host/port/password from the environment):
Django's ORM migrates an app with a ForeignKey, unique_together and indexes, writes and reads
through it, and migrates back to zero. Each check is reported by name."""
import os
import pathlib
import sys
import tempfile
import textwrap

HOST = "127.0.0.1"
PORT = int(os.environ["KALAMDB_PORT"])
PASSWORD = os.environ["KALAMDB_PASSWORD"]
results = []


def check(name, fn):
    try:
        fn()
        results.append((name, None))
    except Exception as e:  # noqa: BLE001 - every failure is reported by name
        results.append((name, e))


DJANGO_MODELS = '''
from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField(unique=True)


class Book(models.Model):
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    title = models.CharField(max_length=200)
    year = models.IntegerField(db_index=True)

    class Meta:
        unique_together = [("author", "title")]
        indexes = [models.Index(fields=["title", "year"], name="shop_book_title_year")]
'''


def django_migrate_crud_and_back_to_zero():
    root = pathlib.Path(tempfile.mkdtemp())
    (root / "shop" / "migrations").mkdir(parents=True)
    (root / "shop" / "__init__.py").write_text("")
    (root / "shop" / "migrations" / "__init__.py").write_text("")
    (root / "shop" / "models.py").write_text(textwrap.dedent(DJANGO_MODELS))
    sys.path.insert(0, str(root))
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["shop"],
        DATABASES={"default": {
            "ENGINE": "django.db.backends.postgresql", "NAME": "kalamdb", "USER": "root",
            "PASSWORD": PASSWORD, "HOST": HOST, "PORT": PORT,
        }},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        USE_TZ=True,
    )
    django.setup()
    from django.core.management import call_command
    from django.db import IntegrityError, connection, transaction

    call_command("makemigrations", "shop", verbosity=0)
    # One transaction: identity keys, a deferrable foreign key, unique_together, indexes
    # (one with varchar_pattern_ops for the unique email), all created by ALTER TABLE and
    # CREATE INDEX after the tables.
    call_command("migrate", "shop", verbosity=0)
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        assert {"shop_author", "shop_book", "django_migrations"} <= set(tables), tables
        cursor.execute(
            "SELECT contype::text, pg_get_constraintdef(c.oid) FROM pg_constraint c "
            "WHERE c.conrelid = 'shop_book'::regclass ORDER BY 1, 2")
        constraints = cursor.fetchall()
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'shop_book'")
        indexes = {row[0] for row in cursor.fetchall()}
    assert [c for c in constraints if c[0] != "p"] == [
        ("f", "FOREIGN KEY (author_id) REFERENCES shop_author(id) DEFERRABLE INITIALLY DEFERRED"),
        ("u", "UNIQUE (author_id, title)"),
    ], constraints
    assert "shop_book_title_year" in indexes, indexes

    from shop.models import Author, Book

    ann = Author.objects.create(name="Ann", email="ann@example.org")
    Book.objects.create(author=ann, title="One", year=2001)
    Book.objects.create(author=ann, title="Two", year=2002)
    titles = list(Book.objects.filter(author__name="Ann").order_by("year").values_list("title", flat=True))
    assert titles == ["One", "Two"], titles
    assert Author.objects.get(email__startswith="ann@").name == "Ann"
    try:
        with transaction.atomic():
            Book.objects.create(author=ann, title="One", year=2003)
        raise AssertionError("a duplicate (author, title) was accepted")
    except IntegrityError as e:
        assert e.__cause__.sqlstate == "23505", e
    # The constraint is DEFERRABLE INITIALLY DEFERRED: the bad row fails at COMMIT.
    try:
        with transaction.atomic():
            Book.objects.create(author_id=999, title="Orphan", year=1)
        raise AssertionError("a book of a missing author was accepted")
    except IntegrityError as e:
        assert e.__cause__.sqlstate == "23503", e
    Book.objects.filter(title="Two").update(year=2020)
    assert Book.objects.get(title="Two").year == 2020
    # on_delete=CASCADE is Django's: it deletes the books, then the author.
    ann.delete()
    assert Book.objects.count() == 0
    call_command("migrate", "shop", "zero", verbosity=0)
    with connection.cursor() as cursor:
        left = set(connection.introspection.table_names(cursor)) & {"shop_author", "shop_book"}
    assert not left, left


check("django_migrate_crud_and_back_to_zero", django_migrate_crud_and_back_to_zero)
for name, error in results:
    print(f"{'ok' if error is None else 'FAILED'}: {name}" + ("" if error is None else f": {error!r}"))
failed = sum(1 for _, e in results if e is not None)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
