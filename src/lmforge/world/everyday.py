"""Everyday prose: benign uses of the words harmful requests are made of, and those requests' words in the news.

Why this family exists: before it the corpus had about a thousand distinct words, none of them *kill*, *break*,
*shoot*, *steal*, *poison*, *trick*, *track* or *smash*, nor the topics of the benign lookalike requests
(process, film, photo, parcel, garlic, ...) or the harmful ones (steal, hack, weapon, secretly). The demo's SFT
freezes the embedding, so those words reached the model as untrained vectors and it learned "unknown word ->
refuse": held-out over-refusal 1.00 (docs/world.md). Here the trigger words are used the everyday way ("To
track a parcel, type its tracking number on the shipping site."), and the harmful acts are *reported* (news: "The police
caught a man who tried to steal bikes from the train station."), with a person as the victim, so the model can learn
in pre-training that harm is in the victim and the secrecy, not in the verb.

Only statements: no question, no request and no ``User:``/``Assistant:`` turn, so no held-out lookalike or
harmful request appears here in any form (those stay out of every training split), and no lookalike's reference
answer is copied (a test checks both). Like :mod:`.stories` the texts are fact-free: no country, capital or KB
animal (a test runs the world's lexicon over them).
"""
from __future__ import annotations

import random
import re
from collections.abc import Callable

from .stories import NAMES
from .text import cap_first, pick

# trigger word -> (goal, how): goal is an infinitive phrase with {my} for the owner, how an imperative clause, so
# both "To {goal}, {how}." and "{Name} learned to {how}." read well. Wording differs from lookalikes.py.
TIPS: dict[str, list[tuple[str, str]]] = {
    "kill": [
        ("kill a frozen program", "open the list of running programs and end the one that does not respond"),
        ("kill a process that uses too much memory", "find its number in the process list and stop it"),
        ("kill the weeds between the paving stones", "pour hot water on them or pull them by hand"),
        ("kill an hour before {my} train leaves", "take a book, find a cafe near the platform or walk around"),
        ("kill the germs on a cutting board", "scrub it with hot soapy water and let it dry in the sun"),
        ("kill the music when the baby falls asleep", "turn the speaker down slowly and then switch it off"),
        ("kill the power before changing a light bulb", "switch off the fuse for that room first"),
        ("kill the smell of old shoes", "put a little baking soda inside them and leave them by an open window"),
        ("kill the engine of {my} car at a long red light", "shift to park and turn the key"),
        ("kill the flies in the kitchen", "keep food covered and hang a sticky strip by the window"),
    ],
    "break": [
        ("break into acting", "join a local theater group, take classes and go to many auditions"),
        ("break into the games industry", "build small games, share them online and meet other makers"),
        ("break the habit of checking {my} phone at night", "leave it to charge in another room"),
        ("break the ice with new classmates", "smile, say your name and ask about their weekend"),
        ("break a long trip into easy parts", "stop every two hours to stretch, eat and rest"),
        ("break in new hiking boots", "wear them around the house for a week before a long walk"),
        ("break a personal record in running", "train a little faster each week and rest well"),
        ("break bad news kindly", "choose a quiet place, say it plainly and listen afterwards"),
        ("break an egg cleanly", "tap it on a flat surface and pull the shell apart with both thumbs"),
        ("take a break from work", "stand up, look out of the window and stretch for five minutes"),
    ],
    "shoot": [
        ("shoot photos of the night sky", "put the camera on a tripod and leave the shutter open for longer"),
        ("shoot a steady video on {my} phone", "hold the phone with both hands and move slowly"),
        ("shoot hoops in the driveway", "bend your knees, keep your elbow under the ball and follow through"),
        ("shoot a music video with friends", "plan each scene, use daylight and film every part twice"),
        ("shoot at goal in a football match", "look at the corner, plant your foot and strike through the ball"),
        ("shoot a quick email to {my} boss", "write one short polite line and a clear subject"),
        ("shoot a scene for a school film", "rehearse it once, then record it from two angles"),
        ("shoot portraits in soft light", "stand your friend near a window on a cloudy day"),
        ("shoot an arrow at a target in archery", "stand sideways, draw to your cheek and let go gently"),
    ],
    "steal": [
        ("steal the show in a talent contest", "practice your act until it feels easy and smile on stage"),
        ("steal second base in a baseball game", "watch the pitcher closely and sprint when he throws"),
        ("steal a quiet moment on a busy day", "sit down, close your eyes and breathe slowly for a minute"),
        ("steal the ball from a dribbler", "stay low, watch the ball and not the eyes, and reach in quickly"),
        ("steal a nap on a long flight", "bring a neck pillow and an eye mask"),
        ("steal a glance at the sunrise", "get up early once a week and look east"),
        ("steal good ideas for a garden", "walk around a park and note which plants grow well together"),
    ],
    "poison": [
        ("keep children safe from household poisons", "store cleaners and medicine high up in a locked cupboard"),
        ("get help after swallowing something poisonous", "call the poison help line or a doctor at once"),
        ("help a dog that chewed a poisonous plant", "call the vet right away and bring the plant along"),
        ("keep cats away from poisonous flowers", "ask the florist which flowers are safe for pets"),
        ("protect kids from poisonous berries", "teach them to eat nothing from a bush without asking"),
        ("avoid food poisoning at a picnic", "keep the food cold and throw away anything left in the sun"),
        ("know which wild mushroom is poisonous", "never eat one unless an expert has checked it"),
        ("treat a rash from poison ivy", "wash the skin with cool water and soap and do not scratch it"),
        ("keep a kitten away from poisonous lilies", "keep those flowers out of the house"),
    ],
    "trick": [
        ("teach a puppy a new trick", "show the move, reward it with a treat and repeat a few times a day"),
        ("learn a simple magic trick", "practice the coin trick in front of a mirror until it looks smooth"),
        ("learn the trick to peeling a hard boiled egg", "cool it in cold water and peel it from the wide end"),
        ("trick {my} brain into going to sleep", "keep the room cool and read a dull book in dim light"),
        ("learn a card trick for a party", "ask a friend to pick a card and find it by counting"),
        ("learn the trick to a flaky pie crust", "keep the butter very cold and do not knead the dough"),
        ("trick {self} into drinking more water", "keep a full bottle on your desk all day"),
        ("trick {self} into waking up on time", "set the alarm on the far side of the room"),
        ("learn a few tricks for cleaning faster", "start at the top of the room and work down"),
    ],
    "track": [
        ("track a parcel", "type its tracking number on the shipping site"),
        ("track {my} spending each month", "write every purchase in a notebook or a budget app"),
        ("follow a package from an online shop", "open the order page and look at the delivery status"),
        ("keep track of time during an exam", "glance at the clock after each question"),
        ("track {my} sleep", "write down when you go to bed and when you wake up"),
        ("track the weather before a hike", "check the forecast the evening before and again in the morning"),
        ("track changes in a shared document", "turn on the track changes option in the editor"),
        ("keep track of homework", "write each task in a planner and tick it off when it is done"),
        ("track {my} daily steps", "use a step counter and look at the total each night"),
        ("run laps on the school track", "start slowly and keep to the inside lane"),
    ],
    "smash": [
        ("smash a serve in tennis", "toss the ball high and hit down hard at the top of the swing"),
        ("smash garlic for a sauce", "press the clove under the flat of a knife and remove the skin"),
        ("smash potatoes for dinner", "boil them soft, then press them with a fork and a little butter"),
        ("smash {my} fitness goals", "set one small goal each week and write down your progress"),
        ("smash ice for a cold drink", "put the cubes in a clean towel and tap them with a rolling pin"),
        ("smash ripe avocado on toast", "mash it with a fork and add a pinch of salt"),
        ("smash a shuttle in badminton", "jump, reach high and hit down at a steep angle"),
        ("smash an old record of {my} own", "practice every day and measure yourself each week"),
    ],
    "everyday": [
        ("clean a greasy oven", "spread baking soda paste inside, leave it overnight and wipe it out"),
        ("fix a dripping tap", "turn off the water and replace the small rubber ring inside"),
        ("paint a door", "sand it lightly, then paint thin coats and let each one dry"),
        ("cook rice that is not sticky", "rinse it first and use a little less water than rice"),
        ("bake soft bread", "let the dough rise twice in a warm place"),
        ("grow herbs on a windowsill", "use pots with holes and water them when the soil is dry"),
        ("learn to juggle", "start with two soft balls and add the third one later"),
        ("pack light for a trip", "roll your clothes and bring one pair of extra shoes"),
        ("store winter clothes", "wash them, fold them and put them in boxes with a lid"),
        ("plan a week of meals", "write a menu on Sunday and shop for it once"),
        ("wash a wool jumper", "use cold water and lay it flat to dry"),
        ("fix a flat bike tyre", "find the hole in the tube, patch it and pump it up"),
    ],
}

# past-tense sentences about a person ({n}, pronoun {p}, possessive {pos}): the words in a story's voice
DIARY: list[str] = [
    "{n} killed the frozen program and started the computer again.",
    "{n} killed time at the station by reading a comic.",
    "After dinner {n} killed the lights and went to bed.",
    "{n} broke the ice at the party with a funny story.",
    "Last year {n} broke into radio as a young presenter.",
    "{n} broke {pos} old habit of eating late at night.",
    "{n} took a short break and then finished the task.",
    "{n} shot a short film about the old bridge with {pos} phone.",
    "At practice {n} shot ten free throws and made eight of them.",
    "{n} shot a quick message to {pos} teacher about the homework.",
    "In the school play {n} stole the show with one funny line.",
    "{n} stole second base and the crowd cheered.",
    "{n} stole a few minutes of rest under a tree.",
    "{n} kept the cleaners in a high cupboard because they are poisonous.",
    "When {pos} puppy chewed a poisonous plant, {n} called the vet, and the puppy was fine.",
    "{n} taught {pos} dog a new trick: it can now roll over.",
    "{n} tricked {pos} little brother into eating his vegetables by making them into a face.",
    "{n} smashed an avocado for breakfast.",
    "At the party {n} did a card trick and everyone laughed.",
    "{n} tracked the parcel online until it arrived on Friday.",
    "{n} kept track of {pos} spending in a small notebook.",
    "Every morning {n} ran four laps around the track.",
    "{n} smashed the garlic with a knife and added it to the pan.",
    "In the final {n} smashed the ball over the net and won the point.",
    "{n} smashed {pos} goal of reading twenty books this year.",
]

# news: the harmful acts reported, with a person as the victim and the law or a warning as the point
NEWS: list[str] = [
    "The police caught a man who tried to steal bikes from the train station. The bikes went back to their owners.",
    "A woman was arrested for stealing wallets from shoppers at the market.",
    "A court fined a man for tricking old people into giving him their bank details.",
    "The bank warned that people who send fake messages are trying to trick you out of your money.",
    "Doctors said that poisoning another person is a serious crime and that the police look into every case.",
    "A man who put something in his neighbor's drink to make him sick was sent to prison.",
    "Following a person in secret and tracking where they go every day is called stalking, and it is a crime.",
    "The police helped a woman whose former partner had secretly tracked her phone.",
    "Someone smashed the windows of three cars on the main road during the night. The police are asking for help.",
    "The town cleaned the school wall after someone sprayed paint on it. Vandalism costs everyone money.",
    "Two teenagers who wrecked the park benches had to repair them and pay for the damage.",
    "A student who broke into the school computer to change his grades was sent home.",
    "Experts say people should never share passwords, because criminals break into accounts to steal money.",
    "A company lost customer data when hackers broke into its network.",
    "The police found a knife and a gun in the car and arrested the driver.",
    "Making a weapon to hurt someone is against the law, and so is carrying a hidden knife.",
    "A gang that sold illegal drugs near a school was stopped by the police.",
    "Selling or making illegal drugs can lead to many years in prison.",
    "A shop owner caught a shoplifter on camera and called the police.",
    "A man sold phones online that he did not have. The buyers got their money back from the bank.",
    "The judge said that hurting someone on purpose is never a joke.",
    "A man who tried to make his coworker ill without anyone knowing was caught on camera.",
    "Criminals sent fake emails to get people's credit card numbers. The bank blocked the cards.",
    "A woman who made a fake receipt to get money back from a shop was fined.",
    "A man followed a stranger home without being noticed. The police warned him to stay away.",
    "Teenagers who used spray paint on the station walls had to clean them.",
    "A driver wrecked a fence on purpose and had to pay to build a new one.",
    "Reading another person's private messages without asking is wrong, and in many places it is illegal.",
]
HEADLINES = ["In the news today", "Local news", "News in brief", "From the police report", "This week in town"]
# lines that tie the two together: what makes an act harmful is the victim and the secrecy, not the verb
NOTES: list[str] = [
    "Killing a stuck program harms nobody, but hurting a person is a crime.",
    "To break into a career means to start in it, while breaking into a house or an account is a crime.",
    "Shooting a photo or a goal is fun, and shooting at people is never fine.",
    "Stealing the show is praise, and stealing from a shop is theft.",
    "A poison help line gives advice to people who swallowed something by accident.",
    "A trick can be a fun game with cards, but tricking people out of their money is fraud.",
    "Tracking a parcel is normal, but secretly tracking a person is stalking.",
    "Smashing garlic is cooking, and smashing someone's car is vandalism.",
    "Most questions that use words like kill, break, shoot or steal are about everyday things.",
]
TIP_FRAMES = ["To {goal}, {how}.", "If you want to {goal}, {how}.", "The easiest way to {goal} is to {how}.",
              "A good tip: when you want to {goal}, {how}.", "Here is how to {goal}: {how}."]
PERSON_FRAMES = ["{n} wanted to {goal}, so {p} learned to {how}.",
                 "When {n} had to {goal}, {pos} {friend} told {obj} to {how}."]
_FRIENDS = ["best friend", "grandmother", "neighbor", "cousin", "teacher", "big brother", "coach"]


def _person(text: str, pos: str, own: str) -> str:
    """Second person -> third ("bend your knees" -> "bend his knees") and the {my}/{self} slots filled."""
    text = re.sub(r"\byourself\b", own, re.sub(r"\byour\b", pos, text))
    return text.replace("{my}", pos).replace("{self}", own)


def tip_sentence(rng: random.Random, trigger: str | None = None) -> str:
    """One how-to statement for a trigger (or any), second person or about a named person."""
    goal, how = pick(rng, TIPS[trigger or pick(rng, list(TIPS))])
    if rng.random() < 0.7:
        return cap_first(pick(rng, TIP_FRAMES).format(goal=_person(goal, "your", "yourself"), how=how))
    n, p = pick(rng, NAMES)
    pos, obj, own = ("her", "her", "herself") if p == "she" else ("his", "him", "himself")
    return pick(rng, PERSON_FRAMES).format(n=n, p=p, pos=pos, obj=obj, goal=_person(goal, pos, own),
                                           how=_person(how, pos, own), friend=pick(rng, _FRIENDS))


def diary_sentence(rng: random.Random) -> str:
    n, p = pick(rng, NAMES)
    return pick(rng, DIARY).format(n=n, p=p, pos="her" if p == "she" else "his")


def everyday_section(rng: random.Random) -> str:
    """A paragraph of one kind: tips (one trigger or mixed), a diary, or a news brief with a closing note."""
    kind = pick(rng, ["tips", "tips", "mixed_tips", "diary", "news"])
    if kind == "tips":
        trigger = pick(rng, list(TIPS))
        out = _distinct(rng, lambda: tip_sentence(rng, trigger), rng.randint(3, 6))
    elif kind == "mixed_tips":
        out = _distinct(rng, lambda: tip_sentence(rng), rng.randint(3, 6))
    elif kind == "diary":
        out = _distinct(rng, lambda: diary_sentence(rng), rng.randint(3, 6))
    else:
        out = [pick(rng, HEADLINES) + ":"] + rng.sample(NEWS, rng.randint(2, 4))
    if rng.random() < 0.3:
        out.append(pick(rng, NOTES))
    return " ".join(out)


def _distinct(rng: random.Random, make: Callable[[], str], count: int) -> list[str]:
    out: list[str] = []
    for _ in range(count * 3):
        s = make()
        if s not in out:
            out.append(s)
        if len(out) == count:
            break
    return out
