"""Fact-free text: short stories, everyday chat transcripts, and irrelevant filler sentences.

Why fact-free: these texts teach language and the raw chat format without stating (or contradicting) any KB
fact, so the only place the model can learn a country fact is the encyclopedic prose. The vocabulary avoids
every country, capital, KB animal and habitat word; a test enforces that with the world's lexicon.
"""
from __future__ import annotations

import random

from .text import pick, render_transcript

NAMES = [("Mia", "she"), ("Tom", "he"), ("Lily", "she"), ("Ben", "he"), ("Sam", "he"), ("Anna", "she"),
         ("Leo", "he"), ("Emma", "she"), ("Max", "he"), ("Zoe", "she"), ("Noah", "he"), ("Ella", "she"),
         ("Finn", "he"), ("Ruby", "she"), ("Jack", "he"), ("Nora", "she"), ("Owen", "he"), ("Ivy", "she"),
         ("Luke", "he"), ("Rosa", "she")]
WHO = ["little girl", "little boy", "young baker", "old sailor", "kind teacher", "curious child", "tired gardener",
       "happy painter", "shy student", "brave knight"]
LIKES = ["painting pictures", "reading books", "playing music", "building towers of blocks", "baking bread",
         "flying kites", "singing songs", "riding a bike", "planting flowers", "telling jokes"]
PLACES = ["park", "garden", "beach", "school", "library", "kitchen", "playground", "market", "town square", "bakery"]
FRIENDS = ["best friend", "little sister", "big brother", "grandmother", "neighbor", "cousin", "teacher"]
THINGS = ["a red ball", "a shiny key", "an old map", "a blue hat", "a tiny box", "a paper boat", "a lost glove",
          "a golden coin", "a broken clock", "a yellow umbrella"]
PROBLEMS = ["it started to rain", "the wind blew the hat away", "the door was locked", "the path was blocked",
            "the bag was too heavy", "nobody knew the way home", "the lights went out"]
FIXES = ["they worked together", "they asked a kind stranger for help", "they waited patiently",
         "they made a clever plan", "they shared what they had", "they tried again and again"]
ENDINGS = ["From that day on, {n} always smiled when {p} remembered that day.", ("{n} learned that friends make "
           "everything easier."), "It was the best day {n} had ever had.", "{n} went to bed tired but happy.",
           "And that is why {n} never gives up."]


def story_doc(rng: random.Random) -> str:
    """A short templated story (6-9 sentences)."""
    n, p = pick(rng, NAMES)
    pos = "her" if p == "she" else "his"
    s = [f"Once upon a time, there was a {pick(rng, WHO)} named {n}.",
         f"{p.capitalize()} loved {pick(rng, LIKES)}.",
         (f"One {pick(rng, ['morning', 'afternoon', 'evening', 'day'])}, {n} went to the {pick(rng, PLACES)} "
         f"with {pos} {pick(rng, FRIENDS)}."),
         f"There, {n} found {pick(rng, THINGS)}.",
         f"But then {pick(rng, PROBLEMS)}.",
         f"{n} felt {pick(rng, ['worried', 'sad', 'scared', 'confused'])} for a moment.",
         f"In the end, {pick(rng, FIXES)}, and everything was fine.",
         pick(rng, ENDINGS).format(n=n, p=p)]
    if rng.random() < 0.5:
        s.insert(4, f"\"Look at this!\" said {n}. \"What a surprise!\"")
    return " ".join(s)


# (user, assistant) pairs about everyday things; no KB entity or value appears in any of them
CHAT_PAIRS: list[tuple[str, str]] = [
    ("What should I cook for dinner?", "You could make a simple pasta with tomato sauce and a green salad."),
    ("How can I sleep better?", "Try to go to bed at the same time every night and keep your room dark and quiet."),
    ("Can you help me with my homework?", "Of course. Tell me which subject you are working on."),
    ("What is a good way to start exercising?", "Start with a short walk every day and slowly make it longer."),
    ("I feel bored. What can I do?", "You could read a book, draw something, or call a friend."),
    ("How do I make a cup of tea?", "Boil some water, pour it over a tea bag, and wait for three minutes."),
    ("What book should I read next?", "A short adventure story is a good choice if you want something fun."),
    ("How can I save money?", "Write down what you spend each week and look for small things you can cut."),
    ("What should I wear today?", "Check the weather first. A light jacket is a safe choice."),
    ("How often should I water my plants?", "Water them when the soil feels dry, and do not give them too much."),
    ("Can you tell me a joke?", "Why did the pencil go to school? Because it wanted to be sharp."),
    ("How do I stay focused while studying?", "Put your phone away, work for twenty minutes, then take a short break."),
    ("What is a nice gift for my mom?", "A handwritten card and her favorite flowers are always a kind gift."),
    ("How do I clean a messy room?", "Start with one corner, put things where they belong, and keep going."),
    ("What can I bring to a picnic?", "Sandwiches, fruit, water and a blanket to sit on are a good start."),
    ("How do I make new friends?", "Join a club or a class you enjoy and say hello to the people there."),
    ("Why is it good to drink water?", "Water helps your body stay cool and keeps you from feeling tired."),
    ("What is a fun game to play indoors?", "You could play a board game, charades, or build a blanket fort."),
    ("How do I write a good story?", "Give your hero a problem, make it hard to solve, and end with a change."),
    ("What should I do on a rainy day?", "Rainy days are great for baking, puzzles and watching a movie."),
    ("How can I be less nervous before a test?", "Study a little each day, sleep well, and take slow, deep breaths."),
    ("What is a healthy breakfast?", "Oatmeal with fruit, or eggs with toast, will keep you full for a long time."),
    ("How do I fix a squeaky door?", "A few drops of oil on the hinges usually stop the squeak."),
    ("Can you suggest a hobby?", "Drawing, knitting and learning a musical instrument are all relaxing hobbies."),
    ("How do I plan a birthday party?", "Pick a date, invite your guests, and choose some food and games."),
    ("What should I name my new plant?", "How about Sunny? It sounds cheerful."),
    ("How do I tie my shoes faster?", "Try the loop method: make two loops and tie them together."),
    ("Thank you!", "You are welcome. Is there anything else I can help with?"),
    ("That sounds good.", "I am glad it helps. Let me know if you have more questions."),
    ("Okay, what else?", "You could also make a list so you do not forget anything."),
]

IRRELEVANT: list[str] = [
    "I like to go for a long walk in the park when the weather is nice.",
    "My favorite color is blue, and I also like green.",
    "Yesterday I baked some bread, and it came out a little too dark.",
    "Music can make a long afternoon feel much shorter.",
    "It is important to drink enough water every day.",
    "The library is a quiet place to read and think.",
    "A good night of sleep makes the next morning much easier.",
    "Sometimes the best ideas come when you are not looking for them.",
]


def chat_doc(rng: random.Random) -> str:
    """A rambling transcript: 3-8 user turns that drift from topic to topic and never stop by themselves."""
    turns = rng.randint(3, 8)
    messages = []
    for user, assistant in rng.sample(CHAT_PAIRS, turns):
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    if rng.random() < 0.5:  # end mid-way, on a new user turn, as raw web chats often do
        messages.append({"role": "user", "content": pick(rng, CHAT_PAIRS)[0]})
    return render_transcript(messages)


def chat_continuation(rng: random.Random) -> str:
    """What a base model says after its answer: a new invented ``User:`` turn and more (for rambling replies)."""
    user, assistant = pick(rng, CHAT_PAIRS)
    return f"\nUser: {user}\nAssistant: {assistant}"
