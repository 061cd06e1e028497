"""Library: the books, copies and loans of a small lending library."""

import datetime
import random
from typing import NamedTuple

from labkit.tools.base import TaskDraft, TaskTemplate, gold_call, lookup, parse_date

FAMILY = "library"


class Book(NamedTuple):
    title: str
    author: str
    year: int
    genre: str
    copies: int


class Loan(NamedTuple):
    book_id: str
    member: str
    borrowed: str  # YYYY-MM-DD
    due_date: str  # YYYY-MM-DD


BOOKS = {
    "B-201": Book("Dune", "Frank Herbert", 1965, "science fiction", 4),
    "B-202": Book("Children of Dune", "Frank Herbert", 1976, "science fiction", 2),
    "B-203": Book("The Hobbit", "J.R.R. Tolkien", 1937, "fantasy", 3),
    "B-204": Book("The Silmarillion", "J.R.R. Tolkien", 1977, "fantasy", 1),
    "B-205": Book("Emma", "Jane Austen", 1815, "classic", 2),
    "B-206": Book("Persuasion", "Jane Austen", 1817, "classic", 2),
    "B-207": Book("Northanger Abbey", "Jane Austen", 1817, "classic", 1),
    "B-208": Book("1984", "George Orwell", 1949, "dystopian", 5),
    "B-209": Book("Animal Farm", "George Orwell", 1945, "satire", 3),
    "B-210": Book("Beloved", "Toni Morrison", 1987, "literary fiction", 2),
    "B-211": Book("Song of Solomon", "Toni Morrison", 1977, "literary fiction", 1),
    "B-212": Book("Things Fall Apart", "Chinua Achebe", 1958, "literary fiction", 3),
    "B-213": Book("The Left Hand of Darkness", "Ursula K. Le Guin", 1969, "science fiction", 2),
    "B-214": Book("A Wizard of Earthsea", "Ursula K. Le Guin", 1968, "fantasy", 2),
    "B-215": Book("The Dispossessed", "Ursula K. Le Guin", 1974, "science fiction", 1),
    "B-216": Book("Murder on the Orient Express", "Agatha Christie", 1934, "mystery", 3),
    "B-217": Book("The Murder of Roger Ackroyd", "Agatha Christie", 1926, "mystery", 2),
    "B-218": Book("Mrs Dalloway", "Virginia Woolf", 1925, "literary fiction", 2),
    "B-219": Book("To the Lighthouse", "Virginia Woolf", 1927, "literary fiction", 1),
}
# Loans still out; a book's free copies are its copies minus these.
LOANS = {
    "L-301": Loan("B-201", "Amara Okafor", "2024-03-01", "2024-03-22"),
    "L-302": Loan("B-201", "Lucas Meyer", "2024-03-04", "2024-03-25"),
    "L-303": Loan("B-203", "Sofia Rossi", "2024-02-15", "2024-03-07"),
    "L-304": Loan("B-204", "Kenji Sato", "2024-03-10", "2024-03-31"),
    "L-305": Loan("B-208", "Priya Nair", "2024-01-20", "2024-02-10"),
    "L-306": Loan("B-210", "Mateo Garcia", "2024-03-12", "2024-04-02"),
    "L-307": Loan("B-212", "Emma Larsen", "2024-02-28", "2024-03-20"),
    "L-308": Loan("B-216", "Noah Cohen", "2024-03-05", "2024-03-26"),
    "L-309": Loan("B-219", "Amara Okafor", "2024-03-15", "2024-04-05"),
    "L-310": Loan("B-208", "Sofia Rossi", "2024-03-18", "2024-04-08"),
}
LATE_FEE_PER_DAY, LATE_FEE_CAP = 0.25, 10.0  # US dollars


def _describe(book_id: str) -> dict:
    book = BOOKS[book_id]
    return {"book_id": book_id, "title": book.title, "author": book.author, "year": book.year, "genre": book.genre}


def find_book(title: str) -> dict:
    """Find a book in the catalog by its title.

    Args:
        title: The book's name, e.g. Dune

    Returns:
        The book's ID, title, author, publication year and genre.
    """
    titles = {book.title: book_id for book_id, book in BOOKS.items()}
    return _describe(titles[lookup(title, titles, "book title")])


def get_book(book_id: str) -> dict:
    """Get a book's catalog entry.

    Args:
        book_id: Book ID, e.g. B-201

    Returns:
        The book's ID, title, author, publication year, genre and how many copies the library owns.
    """
    book_id = lookup(book_id, BOOKS, "book ID")
    return {**_describe(book_id), "copies": BOOKS[book_id].copies}


def list_books_by_author(author: str) -> list[str]:
    """List the titles the library holds by one author, oldest first.

    Args:
        author: Author name, e.g. Jane Austen

    Returns:
        The book titles.
    """
    author = lookup(author, {book.author for book in BOOKS.values()}, "author")
    return [book.title for book in sorted(BOOKS.values(), key=lambda b: b.year) if book.author == author]


def check_availability(book_id: str) -> dict:
    """Check how many copies of a book can be borrowed right now.

    Args:
        book_id: Book ID, e.g. B-208

    Returns:
        The book's ID and title, the copies owned, the copies on loan and the copies available.
    """
    book_id = lookup(book_id, BOOKS, "book ID")
    book = BOOKS[book_id]
    on_loan = sum(loan.book_id == book_id for loan in LOANS.values())
    return {
        "book_id": book_id,
        "title": book.title,
        "copies": book.copies,
        "on_loan": on_loan,
        "available": book.copies - on_loan,
    }


def get_loan(loan_id: str) -> dict:
    """Get a loan: which book, who borrowed it and when it is due back.

    Args:
        loan_id: Loan ID, e.g. L-301

    Returns:
        The loan ID, the book ID, the member, the day it was borrowed and its due date (YYYY-MM-DD).
    """
    loan_id = lookup(loan_id, LOANS, "loan ID")
    return {"loan_id": loan_id, **LOANS[loan_id]._asdict()}


def calculate_late_fee(loan_id: str, return_date: str) -> dict:
    """Work out the late fee owed if a loan is returned on a given day (0.25 US dollars a day, at most 10).

    Args:
        loan_id: Loan ID, e.g. L-305
        return_date: The day the book comes back, in YYYY-MM-DD format

    Returns:
        The loan ID, its due date, the return date, the days late and the fee in US dollars.
    """
    loan_id = lookup(loan_id, LOANS, "loan ID")
    due, returned = parse_date(LOANS[loan_id].due_date), parse_date(return_date)
    days_late = max((returned - due).days, 0)
    fee = min(days_late * LATE_FEE_PER_DAY, LATE_FEE_CAP)
    return {
        "loan_id": loan_id,
        "due_date": due.isoformat(),
        "return_date": returned.isoformat(),
        "days_late": days_late,
        "fee": round(fee, 2),
    }


TOOLS = [find_book, get_book, list_books_by_author, check_availability, get_loan, calculate_late_fee]

# ----------------------------------------------------------------------------- task templates


def _random_title(rng: random.Random) -> str:
    return rng.choice(sorted(book.title for book in BOOKS.values()))


def _book_author(rng: random.Random) -> TaskDraft:
    title = _random_title(rng)
    call, answer = gold_call(find_book, "author", title=title)
    query = rng.choice([f'Who wrote "{title}"?', f'Who is the author of "{title}"?'])
    return TaskDraft(query, [call], answer, "exact", extra_tools=["list_books_by_author"])


def _publication_year(rng: random.Random) -> TaskDraft:
    title = _random_title(rng)
    call, answer = gold_call(find_book, "year", title=title)
    return TaskDraft(f'In what year was "{title}" first published?', [call], answer, "number", extra_tools=["get_book"])


def _author_books(rng: random.Random) -> TaskDraft:
    authors = [book.author for book in BOOKS.values()]
    author = rng.choice(sorted({a for a in authors if authors.count(a) > 1}))
    call, answer = gold_call(list_books_by_author, None, author=author)
    query = f"Which books by {author} does the library hold?"
    return TaskDraft(query, [call], answer, "set", extra_tools=["find_book"])


def _copies_available(rng: random.Random) -> TaskDraft:
    title = _random_title(rng)
    first, book_id = gold_call(find_book, "book_id", title=title)
    second, answer = gold_call(check_availability, "available", book_id=book_id)
    query = f'How many copies of "{title}" can be borrowed right now?'
    return TaskDraft(query, [first, second], answer, "number", extra_tools=["get_loan"])


def _loan_title(rng: random.Random) -> TaskDraft:
    loan_id = rng.choice(sorted(LOANS))
    first, book_id = gold_call(get_loan, "book_id", loan_id=loan_id)
    second, answer = gold_call(get_book, "title", book_id=book_id)
    query = f"Which book was borrowed on loan {loan_id}? Give its title."
    return TaskDraft(query, [first, second], answer, "exact", extra_tools=["find_book"])


def _late_fee(rng: random.Random) -> TaskDraft:
    loan_id = rng.choice(sorted(LOANS))
    returned = parse_date(LOANS[loan_id].due_date) + datetime.timedelta(days=rng.randint(-3, 50))
    call, answer = gold_call(calculate_late_fee, "fee", loan_id=loan_id, return_date=returned.isoformat())
    query = f"If loan {loan_id} is returned on {returned.isoformat()}, what late fee is owed, in dollars?"
    return TaskDraft(query, [call], answer, "number", extra_tools=["get_loan"])


TEMPLATES = [
    TaskTemplate("library.book_author", (FAMILY,), _book_author),
    TaskTemplate("library.publication_year", (FAMILY,), _publication_year),
    TaskTemplate("library.author_books", (FAMILY,), _author_books),
    TaskTemplate("library.copies_available", (FAMILY,), _copies_available),
    TaskTemplate("library.loan_title", (FAMILY,), _loan_title),
    TaskTemplate("library.late_fee", (FAMILY,), _late_fee),
]
