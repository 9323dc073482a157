"""The course's text: the names, sentence frames and word lists the chapters use, and the deterministic, seeded
generator of English-like text the shipped models were trained on. One home, imported by the chapters, the checkers,
``utils.data`` (IOI prompts) and the training scripts alike (``training/`` imports ``utils``, never the reverse).

Nothing is downloaded: every document is built from the word lists below. The text mixes

- ordinary sentences about people, places and objects (the tokenization chapter shows these),
- indirect-object-identification (IOI) sentences in many templates and both name orders::

      ABBA: "When Mary and John went to the store, John gave a drink to Mary."
      BABA: "When John and Mary went to the store, John gave a drink to Mary."

- documents in which a span of sentences is repeated later in the same document.

Held out for evaluation: ``HELDOUT_NAMES`` and ``HELDOUT_TEMPLATES`` never appear in an IOI sentence
during training. Held-out names still appear in ordinary sentences (so they are trained tokens), and
every word of a held-out template occurs elsewhere in the training text (see ``check_heldout_vocab``).

Rows of uniformly random tokens (what makes induction general) are made at the token level by the
training loop, not here.

Example:
    >>> from utils.corpus import generate_documents
    >>> docs = generate_documents(n_docs=2, seed=0)
    >>> len(docs)
    2
"""

from __future__ import annotations

import random
import re

TRAIN_NAMES = """
Mary John Tom James Dan Sarah Paul Mark Lisa Anna Kate Emma Jack Sam Ben Alex Max Ryan Adam Eric
Jane Amy Ann Rose Grace Lucy Helen Laura Linda Susan Karen Nancy Betty Alice Claire Julia Emily
David Peter Michael Robert William Richard Thomas Daniel Matthew Andrew Steven Kevin Brian George
Edward Frank Henry Jason Jeff Scott Chris Joe Mike Tim Nick Luke Ryan Carl Bill Fred Harry Jim
Lily Sophie Chloe Ella Ruby Leo Oscar Noah Liam Ethan
""".split()
TRAIN_NAMES = list(dict.fromkeys(TRAIN_NAMES))  # dedupe, keep order

HELDOUT_NAMES = """
Victoria Arthur Simon Patrick Martin Oliver Charlotte Hannah Rachel Jessica Sean Tony Victor Eva
Diana Philip Gary Roger Sally Julie
""".split()

PLACES = """
store park school market garden station office library kitchen beach river hospital restaurant
museum church farm forest lake bank hotel theater cafe bakery zoo airport harbor village castle
bridge square mall gym hall studio shop field island mountain valley
""".split()

OBJECTS = """
drink book ring bag ball key letter gift apple cake pen phone hat coat cup box flower map ticket
picture lamp chair basket bottle necklace watch camera guitar bike kite toy shirt note coin card
candle plate bowl clock umbrella blanket sandwich cookie pencil notebook scarf
""".split()

ADJECTIVES = """
big small old new red blue green yellow bright dark quiet loud happy sad warm cold heavy light
strange lovely tiny huge busy empty clean dirty cheap expensive famous ancient modern simple
beautiful friendly careful brave clever gentle
""".split()

TIMES = """
morning afternoon evening night weekend summer winter spring autumn holiday
""".split()

DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()

NUMBERS = "two three four five six seven eight nine ten twelve twenty".split()

SURNAMES = """
Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Moore Jackson White Harris
Clark Lewis Walker Hall Allen Young King Wright Scott Green Baker Adams Nelson Hill Campbell Mitchell
Roberts Carter Phillips Evans Turner Parker Collins Edwards Stewart Morris Murphy Cook Rogers Morgan
Cooper Peterson Reed Bailey Bell Kelly Howard Ward Cox Richardson Wood Watson Brooks Bennett Gray
Hughes Price Sanders Myers Long Ross Foster Powell Jenkins Perry Russell Sullivan Fisher Henderson
""".split()

ANIMALS = """
dog cat horse cow sheep goat pig rabbit mouse bird duck chicken owl eagle fox wolf bear deer lion
tiger elephant monkey snake frog turtle fish whale dolphin shark bee butterfly spider squirrel
""".split()

FOODS = """
bread cheese soup rice pasta pizza salad chicken potatoes carrots beans eggs butter honey jam milk
coffee tea juice chocolate pie oranges bananas grapes lemons strawberries tomatoes onions noodles
pancakes sausages
""".split()

JOBS = """
teacher doctor nurse farmer baker driver painter writer singer dancer pilot sailor soldier lawyer
engineer scientist student artist chef gardener musician mechanic librarian journalist carpenter
""".split()

CITIES = """
London Paris Berlin Rome Madrid Vienna Prague Dublin Oslo Lisbon Boston Chicago Denver Seattle
Toronto Sydney Tokyo Cairo Mumbai Istanbul Athens Warsaw Zurich Geneva
""".split()

VERBS = """
cooked painted cleaned fixed watched visited drew built sold repaired carried washed studied
described photographed measured collected borrowed noticed followed ignored remembered admired
""".split()

# Ordinary sentences. {P}/{Q} are people, {place}/{object}/{adj}/{time}/{day}/{num} are filled in.
# These include every word that the held-out IOI templates use (checked by check_heldout_vocab).
ORDINARY_TEMPLATES = [
    "{P} went to the {place} in the {time}.",
    "{P} likes the {adj} {object} very much.",
    "The {place} was {adj} and {adj} on {day}.",
    "{P} bought {num} {object}s at the {place}.",
    "{P} lives near the {adj} {place}.",
    "On {day}, {P} and {Q} walked to the {place}.",
    "There is a {adj} {object} on the table.",
    "{P} found a {object} at the {place}.",
    "{P} handed the {object} to the waiter.",
    "{P} showed the {object} to everyone.",
    "While it was raining, {P} stayed at the {place}.",
    "After lunch, {P} read a book about the {place}.",
    "{P} was walking in the {place} with a {object}.",
    "{P} and {Q} were talking about the {adj} {object}.",
    "{P} threw the {object} into the river.",
    "{P} passed the {place} on the way home.",
    "Later that day, {P} sent a letter from the {place}.",
    "{P} said that the {object} was {adj}.",
    "Every {time}, {P} visits the {place}.",
    "{P} had a long argument with the driver.",
    "{P} brought a {adj} {object} to the party.",
    "The {object} in the {place} belongs to {P}.",
    "{P} is a {adj} person who works at the {place}.",
    "{P} offered to help at the {place}.",
    "It took {num} hours to reach the {place}.",
    "{P} decided to give the {object} away.",
    "Afterwards, {P} went back to the {place}.",
    "{P} forgot the {object} at the {place} again.",
    "Yesterday {P} and {Q} got a {object} from the {place}.",
    "{P} smiled and opened the {adj} {object}.",
    "{P} wrote a note and left it at the {place}.",
    "The {adj} {object} cost {num} dollars.",
    "{P} and {Q} had lunch at the {place} on {day}.",
    "Then {P} carried the {object} up the hill.",
    "Once the {place} closed, {P} went home.",
    "{P} gave a speech at the {place}.",
    "During the {time}, {P} met {Q} at the {place}.",
    "{P} returned the {object} the next day.",
    "{P} {surname} was born in {city} in {year}.",
    "{P} {surname} works as a {job} in {city}.",
    "The {job} {verb} the {object} for {P}.",
    "{P} {verb} the {animal} near the {place}.",
    "In {year}, the {job} moved from {city} to {city2}.",
    "For breakfast {P} had {food} and {food2}.",
    "A {adj} {animal} was sitting next to the {object}.",
    "{P} paid ${n} for the {food} at the {place}.",
    "The train to {city} leaves at {hour}:{minute}.",
    "{P} {verb} {num} {animal}s on {day}.",
    "Mr. {surname} and Mrs. {surname2} opened a {place} in {city}.",
    "{P} asked the {job} about the {adj} {animal}.",
    "Dr. {surname} {verb} the {food} in the {place}.",
    "About {n} people came to the {place} in {year}.",
    "The {animal} ate the {food} while {P} {verb} the {object}.",
    "{P} and {Q} {surname} moved to {city} in {year}.",
]

# IOI templates. {N1} and {N2} are the two names in order; {S} is the subject, the answer is the
# indirect object IO. ABBA: N1=IO, N2=S. BABA: N1=S, N2=IO.
IOI_TRAIN_TEMPLATES = [
    "When {N1} and {N2} went to the {place}, {S} gave a {object} to",
    "When {N1} and {N2} got a {object} at the {place}, {S} decided to give it to",
    "Then, {N1} and {N2} went to the {place}. {S} gave a {object} to",
    "Then, {N1} and {N2} had a long argument, and afterwards {S} said to",
    "After the lunch, {N1} and {N2} went to the {place}. {S} gave a {object} to",
    "{N1} and {N2} were working at the {place}. {S} decided to give a {object} to",
    "{N1} and {N2} had lunch at the {place}. {S} brought a {object} for",
    "The {place} was busy when {N1} and {N2} arrived. {S} sent a {object} to",
    "On {day}, {N1} and {N2} met at the {place}, and {S} offered a {object} to",
    "Friends {N1} and {N2} found a {object} at the {place}. {S} gave it to",
    "When {N1} and {N2} got home from the {place}, {S} threw the {object} to",
    "Yesterday {N1} and {N2} visited the {place}. {S} bought a {object} for",
    "{N1} and {N2} were talking at the {place}, and {S} passed the {object} to",
    "In the {time}, {N1} and {N2} went to the {place}. {S} wrote a note to",
]

IOI_HELDOUT_TEMPLATES = [
    "While {N1} and {N2} were walking in the {place}, {S} showed the {object} to",
    "After {N1} and {N2} found a {object} at the {place}, {S} handed it to",
    "Later that day, {N1} and {N2} stayed at the {place}, and {S} carried the {object} to",
    "Once the {place} closed, {N1} and {N2} went home, and {S} returned the {object} to",
]


def _fill(template: str, rng: random.Random, people: list[str]) -> str:
    """Fill the non-name slots of ``template`` with random words; ``people`` fill {P} and {Q}."""
    p, q = rng.sample(people, 2)
    return template.format(
        P=p,
        Q=q,
        place=rng.choice(PLACES),
        object=rng.choice(OBJECTS),
        adj=rng.choice(ADJECTIVES),
        time=rng.choice(TIMES),
        day=rng.choice(DAYS),
        num=rng.choice(NUMBERS),
        surname=rng.choice(SURNAMES),
        surname2=rng.choice(SURNAMES),
        animal=rng.choice(ANIMALS),
        food=rng.choice(FOODS),
        food2=rng.choice(FOODS),
        job=rng.choice(JOBS),
        city=rng.choice(CITIES),
        city2=rng.choice(CITIES),
        verb=rng.choice(VERBS),
        year=rng.randint(1850, 2030),
        n=rng.randint(2, 400),
        hour=rng.randint(1, 12),
        minute=f"{rng.randrange(0, 60, 5):02d}",
        # IOI slots are filled by ioi_prompt; keep them literal if present.
        N1="{N1}",
        N2="{N2}",
        S="{S}",
    )


def ioi_prompt(template: str, io: str, s: str, order: str, rng: random.Random) -> str:
    """Return an IOI prompt (without the answer) for a template, two names and an order.

    Args:
        template: one of ``IOI_TRAIN_TEMPLATES`` / ``IOI_HELDOUT_TEMPLATES``.
        io: the indirect object (the correct answer, e.g. "Mary").
        s: the subject, named twice (e.g. "John").
        order: "ABBA" (IO first) or "BABA" (S first).
        rng: fills places and objects.

    Example:
        >>> ioi_prompt(IOI_TRAIN_TEMPLATES[0], "Mary", "John", "ABBA", random.Random(0))[:25]
        'When Mary and John went t'
    """
    n1, n2 = (io, s) if order == "ABBA" else (s, io)
    filled = _fill(template, rng, TRAIN_NAMES)
    return filled.format(N1=n1, N2=n2, S=s)


def ioi_sentence(rng: random.Random, names=TRAIN_NAMES, templates=IOI_TRAIN_TEMPLATES) -> str:
    """A complete IOI training sentence, answer included, e.g. '... gave a drink to Mary.'"""
    io, s = rng.sample(names, 2)
    order = rng.choice(["ABBA", "BABA"])
    return ioi_prompt(rng.choice(templates), io, s, order, rng) + f" {io}."


def ordinary_sentence(rng: random.Random) -> str:
    """An ordinary sentence; its people come from train *and* held-out names."""
    return _fill(rng.choice(ORDINARY_TEMPLATES), rng, TRAIN_NAMES + HELDOUT_NAMES)


def document(rng: random.Random) -> str:
    """One document: 3-9 sentences (~30% IOI), sometimes followed by a repeat of one of its spans."""
    sentences = [
        ioi_sentence(rng) if rng.random() < 0.3 else ordinary_sentence(rng)
        for _ in range(rng.randint(3, 9))
    ]
    if rng.random() < 0.3:  # repeat a span of the document later in the same context
        i = rng.randrange(len(sentences))
        j = rng.randint(i + 1, min(len(sentences), i + 3))
        sentences += sentences[i:j]
    return " ".join(sentences)


def generate_documents(n_docs: int, seed: int = 0) -> list[str]:
    """Generate ``n_docs`` documents deterministically from ``seed``.

    Args:
        n_docs: number of documents (each ~40-150 tokens).
        seed: the same seed always gives the same documents.

    Returns:
        A list of ``n_docs`` strings.
    """
    rng = random.Random(seed)
    return [document(rng) for _ in range(n_docs)]


def words(text: str) -> set[str]:
    """The set of words in ``text`` (letters only), e.g. words("Hi, Bob.") == {"Hi", "Bob"}."""
    return set(re.findall(r"[A-Za-z]+", text))


def check_heldout_vocab() -> None:
    """Assert that held-out names/templates never occur in IOI training and use only trained words."""
    assert not set(HELDOUT_NAMES) & set(TRAIN_NAMES), "held-out names overlap train names"
    assert not set(IOI_HELDOUT_TEMPLATES) & set(IOI_TRAIN_TEMPLATES)
    slot_words = {"N", "S", "place", "object"}
    seen = words(" ".join(ORDINARY_TEMPLATES + IOI_TRAIN_TEMPLATES)) | words(
        " ".join(PLACES + OBJECTS + ADJECTIVES + TIMES + DAYS + NUMBERS + VERBS)
    )
    for t in IOI_HELDOUT_TEMPLATES:
        missing = words(t) - slot_words - seen
        assert not missing, f"held-out template uses unseen words {missing}: {t!r}"


check_heldout_vocab()


# --------------------------------------------------------------------------------------------------------
# Version 2 (the IOI phase of `mlp4l`): IOI sentences composed from parts, copying sentences, random-word names.
#
# The v1 corpus above has 14 fixed IOI templates: a model trained on it can lean on template-specific
# positions and fails on unseen frames. Here every IOI sentence is assembled from an opener, a clause in which
# both names appear, a connector and an ending, so no frame dominates. Whole frames listed in
# ``IOI_HELDOUT_TEMPLATES`` and ``IOI_NOVEL_TEMPLATES`` are never generated (``compose_ioi_template`` rejects
# them), and held-out names never appear in an IOI sentence. Every word of a held-out frame occurs in the
# training text (``check_heldout_vocab_v2``).
# --------------------------------------------------------------------------------------------------------

# Openers that make the names' clause subordinate: the main clause follows after a comma.
SUBORDINATE_OPENERS = ["When", "After", "While", "Before", "As soon as", "Just after", "Because", "Since", "Although"]
# Openers of a main clause (the empty one included): any connector may follow the clause.
MAIN_OPENERS = [
    "", "Yesterday", "Yesterday,", "Then,", "Then", "On {day},", "On {day}", "In the {time},", "Later that day,",
    "That {time},", "Once the {place} closed,", "After the lunch,", "While it was raining,", "Earlier,",
    "Last {day},", "One {time},", "At the {place},", "Before the {place} opened,", "Because the {place} was {adj},",
    "Every {time},", "During the {time},", "Afterwards,", "Once again,", "It was {adj}, and",
]
# Clauses in which both names appear: {N1} before {N2}.
NAME_CLAUSES = [
    "{N1} and {N2} went to the {place}", "{N1} and {N2} were walking in the {place}",
    "{N1} and {N2} found a {object} at the {place}", "{N1} and {N2} stayed at the {place}",
    "{N1} and {N2} went home", "{N1} and {N2} had a long argument", "{N1} and {N2} got a {object} at the {place}",
    "{N1} and {N2} were working at the {place}", "{N1} and {N2} had lunch at the {place}",
    "{N1} and {N2} met at the {place}", "{N1} and {N2} visited the {place}", "{N1} and {N2} arrived at the {place}",
    "{N1} and {N2} were talking at the {place}", "{N1} and {N2} got home from the {place}",
    "{N1} and {N2} walked to the {place}", "{N1} and {N2} were sitting in the {place}",
    "{N1} and {N2} came back from the {place}", "{N1} and {N2} bought {num} {object}s",
    "{N1} and {N2} were {adj}", "{N1} and {N2} read a book about the {place}",
    # the names in other roles
    "{N1} met {N2} at the {place}", "{N1} went to the {place} with {N2}", "{N1} was talking to {N2}",
    "{N1} visited {N2} at the {place}", "{N1} and the {job} {N2} went to the {place}",
    "the {job} saw {N1} and {N2} at the {place}", "{N1} asked {N2} about the {adj} {object}",
    "{N1}, {N2} and the {job} had lunch", "{N1} waited for {N2} at the {place}",
]
# What joins the names' clause to the sentence in which the subject acts again.
CONNECTORS = [", ", ". ", ", and ", ", and afterwards ", ". Later, ", "; ", ", so ", ". Then ", ". After that, ",
              " and then ", ". On {day}, ", ", but "]
# The subject's action, up to the word before the answer.
ENDINGS = [
    "gave a {object} to", "gave the {object} to", "gave it to", "gave one {object} to", "handed it to",
    "handed the {object} to", "showed the {object} to", "showed it to", "passed the {object} to",
    "threw the {object} to", "sent a {object} to", "sent a letter to", "carried the {object} to",
    "returned the {object} to", "offered a {object} to", "decided to give a {object} to", "decided to give it to",
    "brought a {object} for", "bought a {object} for", "said to", "said goodbye to", "wrote a note to",
    "smiled at", "read a book to", "sold the {object} to", "forgot the {object} and called",
    "was angry with", "had a {adj} {object} for",
]

# Words that may come before the subject's second mention, after the connector ("Later, {S} ...").
SUBJECT_INTROS = ["", "", "", "", "then ", "later ", "afterwards ", "soon ", "finally ", "in the end ",
                  "in the {time}, ", "on {day}, ", "after a while ", "that {time}, ", "a bit later ", "the next day "]
# The subject's second mention in roles other than the first word of the last clause.
SUBJECT_CLAUSES = [
    "the {job} asked {S} to give the {object} to", "it was {S} who gave a {object} to",
    "{S}, who was {adj}, gave a {object} to", "the {job} told {S} to hand the {object} to",
    "everyone knew that {S} sent a letter to", "{S} and the {job} gave a {object} to",
    "{S} was the one who handed the {object} to", "{S} smiled and gave the {object} to",
    "with a {adj} smile, {S} passed the {object} to", "the {object} that {S} found went to",
]

# Frames in a wording the parts above never produce, written apart from them (for the model card's "novel
# frames" rows). Every word of them occurs in the training text (``check_heldout_vocab_v2``).
IOI_NOVEL_TEMPLATES = [
    "{N1} and {N2} were both at the {place} on {day}. The {job} saw {S} give a {object} to",
    "It was {adj} at the {place} when {N1} and {N2} arrived, so {S} gave a {object} to",
    "At the {adj} {place}, {N1} and {N2} found a {object}. In the {time}, {S} gave it to",
    "{N1} and {N2} had lunch together. Afterwards, {S} returned the {object} to",
    "{N1} was sitting in the {place} next to {N2}. A {adj} {animal} came in, and {S} gave a {object} to",
    "The {place} was {adj} when {N1} met {N2} there. After a long day, {S} wrote a note to",
    "{N1} and {N2} were friends. One day {S} decided to send a {object} to",
    "Both {N1} and {N2} were at the {place}. Without a word, {S} passed the {object} to",
]


def _shape(template: str) -> str:
    """A template with its fillers removed, for comparing frames: ``"When {N1} and {N2} ..."``."""
    return re.sub(r"\s+", " ", template).strip()


_EXCLUDED = {_shape(t) for t in IOI_HELDOUT_TEMPLATES + IOI_NOVEL_TEMPLATES}


def compose_ioi_template(rng: random.Random) -> str:
    """A random IOI template composed from parts, never one of the held-out or novel frames.

    Example:
        >>> compose_ioi_template(random.Random(0)).count("{S}"), compose_ioi_template(random.Random(0))[-3:]
        (1, ' to')
    """
    while True:
        clause = rng.choice(NAME_CLAUSES)
        if rng.random() < 0.35:
            opener, connector = rng.choice(SUBORDINATE_OPENERS), rng.choice([", ", ", then "])
        else:
            opener, connector = rng.choice(MAIN_OPENERS), rng.choice(CONNECTORS)
        if opener.endswith("and") and connector in (", and ", " and then ", ", and afterwards "):
            continue
        head = f"{opener} {clause}".strip()
        subject = rng.choice(SUBJECT_CLAUSES) if rng.random() < 0.25 else f"{{S}} {rng.choice(ENDINGS)}"
        tail = rng.choice(SUBJECT_INTROS) + subject
        if connector.rstrip().endswith(".") or connector == ". ":
            tail = tail[0].upper() + tail[1:]
        template = f"{head[0].upper() + head[1:]}{connector}{tail}"
        if _shape(template) not in _EXCLUDED:
            return template


# More ordinary sentences for v2 documents (with ``ORDINARY_TEMPLATES``): they put every word of the novel frames
# into the training text, in other contexts.
ORDINARY_TEMPLATES_V2 = [
    "Both of the {object}s were {adj}.",
    "{P} and {Q} went home together after the party.",
    "{P} will send a {object} to the {job} next {day}.",
    "Without a map, {P} got lost near the {place}.",
    "{P} saw a {adj} {animal} next to the {place}.",
    "{P} and {Q} have been friends since {year}.",
    "It was a long day, and the {job} came in late.",
    "{P} did not say a word about the {object}.",
    "The {job} was sitting in the {place} with a {object}.",
    "One day the {animal} came back to the {place}.",
    "{P} met the {job} there in the {time}.",
]


def ordinary_sentence_v2(rng: random.Random) -> str:
    templates = ORDINARY_TEMPLATES_V2 if rng.random() < 0.15 else ORDINARY_TEMPLATES
    return _fill(rng.choice(templates), rng, TRAIN_NAMES + HELDOUT_NAMES)


# Copying without IOI structure: one name, mentioned twice, must be copied. Filled with train *and* held-out
# names, so that every name's embedding learns to be copied.
COPY_TEMPLATES = [
    "My friend is called {P}, and everyone likes {P}.",
    "The new {job} is {P}. Everyone at the {place} knows {P}.",
    "Ask {P} about the {object}, because {P} knows where it is.",
    "This {object} belongs to {P}, so please give it back to {P}.",
    "We waited for {P} at the {place}, but {P} never came.",
    "The letter was for {P}, and the {job} handed it to {P}.",
    "Everyone was looking for {P}. In the end, the {job} found {P} at the {place}.",
    "{P} was late again, and the {job} was angry with {P}.",
    "The {adj} {object} is a gift for {P}. The {job} will give it to {P} on {day}.",
    "Dear {P}, thank you for the {object}. See you soon, {P}!",
]


# Words that stand in for names in some IOI sentences (never a held-out name): the training script keeps those that
# are single tokens (``word_names``).
WORD_NAME_CANDIDATES = sorted(set(SURNAMES + CITIES + DAYS + ANIMALS + JOBS) - set(HELDOUT_NAMES) - set(TRAIN_NAMES))


def word_names(tokenizer) -> list[str]:
    """The candidates that are one token with a leading space for ``tokenizer`` (a Hugging Face tokenizer)."""
    return [w for w in WORD_NAME_CANDIDATES if len(tokenizer.encode(" " + w, add_special_tokens=False)) == 1]


_SYLLABLES = ("ba be bo da de di do ka ke ko la le li lo ma me mi mo na ne no ra re ri ro sa se so ta te ti to va ve "
              "vo za").split()


def pseudo_name(rng: random.Random) -> str:
    """A made-up name of 2-3 syllables ("Kelora"): usually several tokens, never one the model could memorise."""
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def ioi_sentence_v2(rng: random.Random, names_of_words: list[str] = (), word_names_frac: float = 0.2,
                    pseudo_names_frac: float = 0.0) -> str:
    """A complete composed IOI sentence (answer included). A ``word_names_frac`` share uses two of
    ``names_of_words`` as the names and a ``pseudo_names_frac`` share two made-up names, so that the circuit cannot
    rely on which tokens are names."""
    u = rng.random()
    if u < pseudo_names_frac:
        io, s = pseudo_name(rng), pseudo_name(rng)
        while s == io:
            s = pseudo_name(rng)
        return ioi_prompt(compose_ioi_template(rng), io, s, rng.choice(["ABBA", "BABA"]), rng) + f" {io}."
    use_words = names_of_words and u < pseudo_names_frac + word_names_frac
    names = names_of_words if use_words else TRAIN_NAMES
    io, s = rng.sample(names, 2)
    order = rng.choice(["ABBA", "BABA"])
    return ioi_prompt(compose_ioi_template(rng), io, s, order, rng) + f" {io}."


def copy_sentence(rng: random.Random) -> str:
    return _fill(rng.choice(COPY_TEMPLATES), rng, TRAIN_NAMES + HELDOUT_NAMES)


def document_v2(rng: random.Random, ioi_frac: float = 0.4, copy_frac: float = 0.15,
                names_of_words: list[str] = (), word_names_frac: float = 0.2, pseudo_names_frac: float = 0.0) -> str:
    """One v2 document: 3-9 sentences (IOI ``ioi_frac``, copying ``copy_frac``, else ordinary), sometimes
    followed by a repeat of one of its spans."""
    sentences = []
    for _ in range(rng.randint(3, 9)):
        u = rng.random()
        sentences.append(ioi_sentence_v2(rng, names_of_words, word_names_frac, pseudo_names_frac) if u < ioi_frac
                         else copy_sentence(rng) if u < ioi_frac + copy_frac else ordinary_sentence_v2(rng))
    if rng.random() < 0.3:
        i = rng.randrange(len(sentences))
        j = rng.randint(i + 1, min(len(sentences), i + 3))
        sentences += sentences[i:j]
    return " ".join(sentences)


def generate_documents_v2(n_docs: int, seed: int = 0, **fractions) -> list[str]:
    """``n_docs`` v2 documents, deterministically from ``seed`` (``fractions``: see :func:`document_v2`)."""
    rng = random.Random(seed)
    return [document_v2(rng, **fractions) for _ in range(n_docs)]


def check_heldout_vocab_v2() -> None:
    """Assert that every word of the held-out and novel frames occurs in the v1 or v2 training text's parts, and
    that no composed frame can equal one of them (``compose_ioi_template`` rejects exact matches)."""
    slot_words = {"N", "S", "place", "object", "day", "time", "adj", "job", "animal"}
    parts = (ORDINARY_TEMPLATES + ORDINARY_TEMPLATES_V2 + IOI_TRAIN_TEMPLATES + SUBORDINATE_OPENERS + MAIN_OPENERS
             + NAME_CLAUSES + CONNECTORS + ENDINGS + SUBJECT_INTROS + SUBJECT_CLAUSES + COPY_TEMPLATES + PLACES
             + OBJECTS + ADJECTIVES + TIMES + DAYS + NUMBERS + VERBS + ANIMALS + JOBS + FOODS)
    seen = words(" ".join(parts)) | {w.lower() for w in words(" ".join(parts))}
    for t in IOI_HELDOUT_TEMPLATES + IOI_NOVEL_TEMPLATES:
        missing = {w for w in words(t) - slot_words if w not in seen and w.lower() not in seen}
        assert not missing, f"held-out frame uses words never seen in training {missing}: {t!r}"
    assert not set(IOI_NOVEL_TEMPLATES) & set(IOI_HELDOUT_TEMPLATES)


check_heldout_vocab_v2()
