"""Every route handler, gathered for create_app()."""

from app.routes import auth, loans, pages

ROUTES = [
    pages.home,
    pages.health,
    pages.mylibrary,
    pages.holds_page,
    pages.search_page,
    pages.favicon,
    auth.login_page,
    auth.login,
    auth.logout,
    auth.password_page,
    auth.change_password,
    loans.loans_page,
    loans.renew,
    loans.renew_all,
]
