"""Server-rendered pages: the landing page and login. Console, supervisor, simulator,
kiosk and board pages register on this blueprint from their own modules."""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import redirect, render_template, request, session, url_for

from app.auth import authenticate
from app.extensions import limiter

bp = APIBlueprint("pages", __name__, enable_openapi=False)


@bp.get("/")
def index():
    """The landing page: links to every page of the demo."""
    return render_template("index.html")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def login():
    """An agent or supervisor signs in to the console pages."""
    error = None
    if request.method == "POST":
        user = authenticate(request.form.get("email", ""), request.form.get("password", ""))
        if user is None:
            error = "Wrong email or password."
        else:
            session.clear()
            session["uid"] = user.id
            target = request.args.get("next") or url_for("pages.index")
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("pages.index")
            return redirect(target)
    return render_template("login.html", error=error), 401 if error else 200


@bp.post("/logout")
def logout():
    """Signs the current user out."""
    session.clear()
    return redirect(url_for("pages.login"))
