"""The staff-curated preset library that `seed_demo` installs (and staff edit in the admin):
useful starting points for writing, marketing, code, summarising, translation and image prompts.
Seeding creates the presets that are missing by name and never changes ones staff edited."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.presets.models import Preset
from apps.presets.variables import clean_variables

TONES = ["Friendly", "Professional", "Confident", "Playful", "Empathetic", "Formal"]
LANGUAGES = ["English", "German", "French", "Spanish", "Italian", "Portuguese", "Dutch", "Japanese", "Chinese"]

LIBRARY: list[dict[str, Any]] = [
    # ---------------------------------------------------------------- writing
    {
        "name": "Blog post",
        "icon": "📝",
        "category": "writing",
        "output": "document",
        "description": "A structured blog post with headings, from a topic and an audience.",
        "template": (
            "Write a blog post about {{topic}} for {{audience}}. Use a clear title, a short "
            "introduction, three to five sections with headings, and a conclusion with one call to "
            "action. Tone: {{tone}}. Length: about {{words}} words. Format the answer in Markdown."
        ),
        "variables": [
            {"name": "topic", "type": "short", "max_length": 200},
            {"name": "audience", "type": "short", "default": "a general audience"},
            {"name": "tone", "type": "select", "options": TONES, "default": "Friendly"},
            {"name": "words", "label": "Words", "type": "number", "min": 200, "max": 3000, "default": "800"},
        ],
    },
    {
        "name": "Rewrite more clearly",
        "icon": "✍️",
        "category": "writing",
        "description": "Plainer words, shorter sentences, same meaning.",
        "template": (
            "Rewrite the text below so it is clearer and easier to read: plain words, shorter "
            "sentences, the same meaning and facts. Keep the language of the text.\n\n{{text}}"
        ),
        "variables": [{"name": "text", "type": "long"}],
    },
    {
        "name": "Professional email",
        "icon": "✉️",
        "category": "writing",
        "description": "An email to a named recipient, with the points you want to make.",
        "template": (
            "Write an email to {{recipient}} about {{subject}}. Make these points:\n{{points}}\n\n"
            "Tone: {{tone}}. Keep it under 200 words and end with a clear next step."
        ),
        "variables": [
            {"name": "recipient", "type": "short"},
            {"name": "subject", "type": "short"},
            {"name": "points", "type": "long"},
            {"name": "tone", "type": "select", "options": TONES, "default": "Professional"},
        ],
    },
    {
        "name": "Outline",
        "icon": "🗂️",
        "category": "writing",
        "output": "document",
        "description": "A detailed outline for an article, report or talk.",
        "template": (
            "Create a detailed outline for a {{kind}} about {{topic}}. Use Markdown headings for "
            "sections and bullet points for what each covers."
        ),
        "variables": [
            {
                "name": "kind",
                "label": "Kind of text",
                "type": "select",
                "options": ["article", "report", "talk", "course"],
            },
            {"name": "topic", "type": "short"},
        ],
    },
    {
        "name": "Fix grammar and spelling",
        "icon": "✅",
        "category": "writing",
        "description": "Corrects mistakes without changing the style.",
        "template": (
            "Correct the grammar, spelling and punctuation of the text below. Do not change its "
            "style or meaning. Answer with the corrected text only.\n\n{{text}}"
        ),
        "variables": [{"name": "text", "type": "long"}],
    },
    # ---------------------------------------------------------------- marketing
    {
        "name": "Product description",
        "icon": "🛍️",
        "category": "marketing",
        "description": "A persuasive product description from its features.",
        "template": (
            "Write a product description for {{product}}. Key features:\n{{features}}\n\n"
            "Audience: {{audience}}. Tone: {{tone}}. Two short paragraphs, then a bulleted list of "
            "benefits."
        ),
        "variables": [
            {"name": "product", "type": "short"},
            {"name": "features", "type": "long"},
            {"name": "audience", "type": "short", "default": "online shoppers"},
            {"name": "tone", "type": "select", "options": TONES, "default": "Confident"},
        ],
    },
    {
        "name": "Social media posts",
        "icon": "📣",
        "category": "marketing",
        "description": "Several post ideas for one platform about an announcement.",
        "template": (
            "Write {{count}} different {{platform}} posts announcing {{announcement}}. Each one "
            "fits the platform's style and length, with relevant hashtags where they are used."
        ),
        "variables": [
            {"name": "count", "label": "How many", "type": "number", "min": 1, "max": 10, "default": "3"},
            {"name": "platform", "type": "select", "options": ["LinkedIn", "X", "Instagram", "Facebook", "Threads"]},
            {"name": "announcement", "type": "long"},
        ],
    },
    {
        "name": "Ad headlines",
        "icon": "🎯",
        "category": "marketing",
        "description": "Short headline variants for an ad campaign.",
        "template": (
            "Write 10 ad headlines of at most {{max_chars}} characters for {{offer}}, aimed at "
            "{{audience}}. Vary the angle: benefit, urgency, curiosity, social proof."
        ),
        "variables": [
            {"name": "offer", "type": "short"},
            {"name": "audience", "type": "short"},
            {
                "name": "max_chars",
                "label": "Longest headline (characters)",
                "type": "number",
                "min": 20,
                "max": 120,
                "default": "40",
            },
        ],
    },
    {
        "name": "Newsletter",
        "icon": "📰",
        "category": "marketing",
        "output": "document",
        "description": "A newsletter issue from a list of updates.",
        "template": (
            "Write a newsletter for {{audience}} covering these updates:\n{{updates}}\n\n"
            "Start with a one-line subject and a short greeting; give each update a heading and "
            "two or three sentences; end with a sign-off from {{sender}}."
        ),
        "variables": [
            {"name": "audience", "type": "short"},
            {"name": "updates", "type": "long"},
            {"name": "sender", "type": "short"},
        ],
    },
    {
        "name": "SEO meta description",
        "icon": "🔎",
        "category": "marketing",
        "description": "A search-result description under 155 characters.",
        "template": (
            "Write three meta descriptions (at most 155 characters each) for a page about {{page}}. "
            "Include the keyword “{{keyword}}” naturally."
        ),
        "variables": [{"name": "page", "type": "short"}, {"name": "keyword", "type": "short"}],
    },
    # ---------------------------------------------------------------- code
    {
        "name": "Explain code",
        "icon": "🧑‍💻",
        "category": "code",
        "description": "What a piece of code does, step by step.",
        "template": (
            "Explain what this {{language}} code does, step by step, then point out any bug or "
            "risk you see.\n\n```\n{{code}}\n```"
        ),
        "variables": [
            {"name": "language", "type": "short", "default": "Python"},
            {"name": "code", "type": "long"},
        ],
    },
    {
        "name": "Write unit tests",
        "icon": "🧪",
        "category": "code",
        "description": "Tests for a function, with edge cases.",
        "template": (
            "Write unit tests with {{framework}} for the code below. Cover normal cases, edge cases "
            "and errors; name each test after what it shows.\n\n```\n{{code}}\n```"
        ),
        "variables": [
            {"name": "framework", "type": "short", "default": "pytest"},
            {"name": "code", "type": "long"},
        ],
    },
    {
        "name": "Review a change",
        "icon": "🔍",
        "category": "code",
        "description": "A code review: correctness, clarity, tests.",
        "template": (
            "Review this change as a senior engineer. List problems by importance (correctness, "
            "security, performance, clarity, missing tests), each with a concrete suggestion.\n\n"
            "```\n{{diff}}\n```"
        ),
        "variables": [{"name": "diff", "label": "Code or diff", "type": "long"}],
    },
    {
        "name": "SQL from a question",
        "icon": "🗄️",
        "category": "code",
        "description": "A SQL query from a plain-language question and the tables.",
        "template": (
            "Write a {{dialect}} query that answers: {{question}}\n\nTables:\n{{schema}}\n\n"
            "Explain the query in two sentences after it."
        ),
        "variables": [
            {"name": "dialect", "type": "select", "options": ["PostgreSQL", "MySQL", "SQLite", "SQL Server"]},
            {"name": "question", "type": "short"},
            {"name": "schema", "label": "Tables and columns", "type": "long"},
        ],
    },
    # ---------------------------------------------------------------- summarising
    {
        "name": "Summarise",
        "icon": "📋",
        "category": "summarising",
        "description": "A summary of any text at the length you choose.",
        "template": "Summarise the text below in {{length}}. Keep every number and name that matters.\n\n{{text}}",
        "variables": [
            {
                "name": "length",
                "type": "select",
                "options": ["one sentence", "three bullet points", "one paragraph", "one page"],
                "default": "three bullet points",
            },
            {"name": "text", "type": "long"},
        ],
    },
    {
        "name": "Meeting notes to actions",
        "icon": "📌",
        "category": "summarising",
        "output": "document",
        "description": "Decisions, action items with owners, open questions.",
        "template": (
            "From these meeting notes, list: the decisions made; the action items, each with its "
            "owner and due date when given; and the open questions.\n\n{{notes}}"
        ),
        "variables": [{"name": "notes", "type": "long"}],
    },
    {
        "name": "Key points for an executive",
        "icon": "🧭",
        "category": "summarising",
        "description": "What a busy reader must know, and what to decide.",
        "template": (
            "Give a busy executive the key points of the text below: what happened, why it matters, "
            "and what decision is needed, in at most 120 words.\n\n{{text}}"
        ),
        "variables": [{"name": "text", "type": "long"}],
    },
    # ---------------------------------------------------------------- translation
    {
        "name": "Translate",
        "icon": "🌍",
        "category": "translation",
        "description": "A natural translation that keeps formatting.",
        "template": (
            "Translate the text below into {{language}}. Keep the meaning, tone and Markdown "
            "formatting; answer with the translation only.\n\n{{text}}"
        ),
        "variables": [
            {"name": "language", "type": "select", "options": LANGUAGES},
            {"name": "text", "type": "long"},
        ],
    },
    {
        "name": "Localise marketing copy",
        "icon": "🗺️",
        "category": "translation",
        "description": "Adapts copy to a market, not word for word.",
        "template": (
            "Adapt this marketing copy for readers in {{market}} writing in {{language}}: adjust "
            "idioms, examples and units so it reads as if written there.\n\n{{text}}"
        ),
        "variables": [
            {"name": "market", "type": "short"},
            {"name": "language", "type": "select", "options": LANGUAGES},
            {"name": "text", "type": "long"},
        ],
    },
    # ---------------------------------------------------------------- image prompts
    {
        "name": "Product photo",
        "icon": "📸",
        "category": "image",
        "output": "image",
        "description": "A studio photo of a product on a clean background.",
        "template": (
            "Studio product photo of {{product}} on a {{background}} background, soft diffused "
            "light, sharp focus, high detail, commercial photography"
        ),
        "variables": [
            {"name": "product", "type": "short"},
            {
                "name": "background",
                "type": "select",
                "options": ["white", "light grey", "pastel", "dark", "wooden"],
                "default": "white",
            },
        ],
    },
    {
        "name": "Illustration",
        "icon": "🎨",
        "category": "image",
        "output": "image",
        "description": "An illustration of a scene in a chosen style.",
        "template": "{{style}} illustration of {{scene}}, {{palette}} colour palette, clean composition",
        "variables": [
            {"name": "scene", "type": "short"},
            {
                "name": "style",
                "type": "select",
                "options": ["Flat vector", "Watercolour", "Isometric", "Line art", "Paper cut", "3D clay"],
            },
            {"name": "palette", "type": "short", "default": "warm"},
        ],
    },
    {
        "name": "Blog header image",
        "icon": "🖼️",
        "category": "image",
        "output": "image",
        "description": "A wide header image for an article topic.",
        "template": (
            "Wide header image for an article about {{topic}}, {{mood}} mood, minimal, no text, "
            "plenty of empty space on the left for a title"
        ),
        "variables": [
            {"name": "topic", "type": "short"},
            {
                "name": "mood",
                "type": "select",
                "options": ["calm", "energetic", "serious", "optimistic"],
                "default": "optimistic",
            },
        ],
    },
]


@transaction.atomic
def presets_seed_library() -> int:
    """Create the library presets that do not exist yet (by name). Returns how many."""
    existing = set(Preset.objects.filter(scope=Preset.Scope.LIBRARY).values_list("name", flat=True))
    created = 0
    for spec in LIBRARY:
        if spec["name"] in existing:
            continue
        fields = dict(spec)
        fields["variables"] = clean_variables(fields["template"], fields.get("variables", []))
        Preset.objects.create(scope=Preset.Scope.LIBRARY, workspace=None, owner=None, **fields)
        created += 1
    return created
