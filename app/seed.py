"""Demo data for ``make run``: queues, skills, agents, citizens and the knowledge base.

Idempotent: running it twice changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from app.extensions import db
from app.models import (
    AgentSkill,
    ChannelProfile,
    Citizen,
    ContactPoint,
    Queue,
    SegmentProfile,
    Skill,
    User,
)

DEMO_PASSWORD = "civicline-demo"
WEEKDAYS_8_TO_6 = {"days": [0, 1, 2, 3, 4], "open": "08:00", "close": "18:00",
                   "tz": "America/New_York"}

QUEUES = [
    # code, name, department, sla seconds, walk-in prefix
    ("benefits", "Food and cash benefits", "Human Services", 60, "B"),
    ("passports", "Passports", "Federal Services Desk", 120, "P"),
    ("taxes", "Property taxes", "Finance", 90, "T"),
    ("housing", "Housing help", "Housing", 60, "H"),
    ("sanitation", "Trash and recycling", "Public Works", 120, "S"),
    ("streets", "Potholes and streets", "Public Works", 120, None),
    ("general", "General information", "311 Contact Center", 60, "G"),
]

AGENTS = [
    # email, name, role, languages, topics (proficiency), desk
    ("ana@civicline.example", "Ana Reyes", "agent", {"en": 5, "es": 5},
     {"benefits": 5, "housing": 4, "general": 3}, "1"),
    ("ben@civicline.example", "Ben Okafor", "agent", {"en": 5},
     {"passports": 5, "taxes": 4, "general": 4}, "2"),
    ("li@civicline.example", "Li Wei", "agent", {"en": 4, "zh": 5},
     {"housing": 5, "benefits": 3, "general": 3}, "3"),
    ("sam@civicline.example", "Sam Patel", "agent", {"en": 5, "es": 3},
     {"sanitation": 5, "streets": 5, "general": 4}, "4"),
    ("supervisor@civicline.example", "Dana Brooks", "supervisor", {"en": 5, "es": 4},
     {"general": 4}, None),
    ("admin@civicline.example", "Admin", "admin", {"en": 5}, {"general": 3}, None),
]

CITIZENS = [
    # name, language, segment, contacts, preferred, accessibility
    ("Maria Lopez", "en", "working_adult", [("phone", "+15555550123")], ["sms", "email"], []),
    ("José García", "es", "working_adult", [("phone", "+15555550124")], ["voice", "sms"], []),
    ("Pat Kim", "en", "senior", [("phone", "+15555550125"), ("email", "pat.kim@example.org")],
     ["sms", "email"], ["deaf"]),
]

SEGMENTS = [
    ("senior", ["voice", "email", "sms"], "Residents 65+: phone first"),
    ("working_adult", ["sms", "email", "voice"], "Working-age adults: text first"),
    ("business", ["email", "voice"], "Businesses: email first"),
]


def _skill(kind: str, code: str) -> Skill:
    skill = db.session.scalar(sa.select(Skill).where(Skill.kind == kind, Skill.code == code))
    if skill is None:
        skill = Skill(kind=kind, code=code, name=code)
        db.session.add(skill)
        db.session.flush()
    return skill


def seed(echo: Callable[[str], None] = print) -> None:
    for code, name, dept, sla, prefix in QUEUES:
        if db.session.scalar(sa.select(Queue).where(Queue.code == code)) is None:
            db.session.add(Queue(
                code=code, name=name, department=dept, sla_target_seconds=sla,
                required_skills=[code], channels=["voice", "sms", "email", "chat", "walkin"],
                business_hours={"weekly": [WEEKDAYS_8_TO_6]}, walkin_prefix=prefix,
                overflow={"relax_after": 120, "department_after": 300, "general_after": 600},
            ))
            echo(f"  queue {code}")
    for email, name, role, langs, topics, desk in AGENTS:
        user = db.session.scalar(sa.select(User).where(User.email == email))
        if user is None:
            user = User(email=email, name=name, role=role, desk=desk, password_hash="",
                        capacity={"voice": 1, "chat": 3, "email": 5, "sms": 5, "walkin": 1})
            user.set_password(DEMO_PASSWORD)
            db.session.add(user)
            db.session.flush()
            for code, level in langs.items():
                db.session.add(AgentSkill(agent_id=user.id, skill_id=_skill("language", code).id,
                                          proficiency=level))
            for code, level in topics.items():
                db.session.add(AgentSkill(agent_id=user.id, skill_id=_skill("topic", code).id,
                                          proficiency=level))
            echo(f"  {role} {email}: {', '.join(topics)}; speaks {', '.join(langs)}")
    for segment, channels, description in SEGMENTS:
        query = sa.select(SegmentProfile).where(SegmentProfile.segment == segment)
        if db.session.scalar(query) is None:
            db.session.add(SegmentProfile(segment=segment, preferred_channels=channels,
                                          description=description))
    for name, lang, segment, contacts, preferred, needs in CITIZENS:
        kind, value = contacts[0]
        exists = db.session.scalar(sa.select(ContactPoint).where(
            ContactPoint.kind == kind, ContactPoint.value == value))
        if exists is not None:
            continue
        citizen = Citizen(display_name=name, language=lang, segment=segment)
        db.session.add(citizen)
        db.session.flush()
        for kind, value in contacts:
            db.session.add(ContactPoint(citizen_id=citizen.id, kind=kind, value=value,
                                        verified=True))
        db.session.add(ChannelProfile(citizen_id=citizen.id, preferred_channels=preferred,
                                      language=lang, accessibility=needs))
        echo(f"  citizen {name}")
    db.session.commit()
    for hook in SEED_HOOKS:
        hook(echo)
    echo(f"Demo data ready. Sign in as ana@civicline.example / {DEMO_PASSWORD} (agent) or "
         f"supervisor@civicline.example / {DEMO_PASSWORD} (supervisor).")
    takers = "; ".join(f"{email.split('@')[0]}: {', '.join(t for t in topics if t != 'general')}"
                       for email, _name, role, _langs, topics, _desk in AGENTS
                       if role == "agent")
    echo(f"Each queue goes to the agents who know its subject ({takers}); every agent "
         "takes general.")


# Features add their own demo data here (the knowledge base adds its articles).
SEED_HOOKS: list[Callable[[Callable[[str], None]], None]] = []
