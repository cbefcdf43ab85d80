"""Writes ``long_billing_review.json``: a realistic 20-minute call, built from a script.

A mobile-phone customer reviews three months of bills line by line (finding a wrong
roaming charge), moves to a family plan with two new lines, troubleshoots picture
messages step by step, sets up a payment arrangement, and books a travel pass. The
bill lines and troubleshooting steps are generated from tables so the call reaches
twenty minutes without copy-paste; everything else is written out.

Run ``python tests/data/calls/build_long_call.py`` to regenerate the JSON (deterministic).
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

BILLS = {
    "December": [
        ("the 3rd", "your monthly plan, Unlimited Talk and 15 gigabytes", "$55.00", None),
        ("the 3rd", "the device payment for the Pixel, installment 13 of 24", "$28.75", None),
        ("the 12th", "a music streaming subscription", "$10.99", "Yes, that's the family music."),
        (
            "the 24th",
            "an international call to Canada, 44 minutes",
            "$13.20",
            "Christmas Eve, calling my sister. Fair enough.",
        ),
        ("the 31st", "taxes and regulatory fees", "$8.02", None),
    ],
    "January": [
        ("the 3rd", "your monthly plan, Unlimited Talk and 15 gigabytes", "$55.00", None),
        ("the 3rd", "the device payment for the Pixel, installment 14 of 24", "$28.75", None),
        (
            "the 9th",
            "a movie rental from the TV app",
            "$5.99",
            "Yes, that was me, we watched a film.",
        ),
        ("the 17th", "an international call to Canada, 12 minutes", "$3.60", "Right, my sister."),
        ("the 22nd", "a data top-up of 2 gigabytes", "$10.00", "I remember, I ran out that month."),
        ("the 31st", "taxes and regulatory fees", "$7.84", None),
    ],
    "February": [
        ("the 3rd", "your monthly plan", "$55.00", None),
        ("the 3rd", "the device payment, installment 15 of 24", "$28.75", None),
        (
            "the 11th",
            "a roaming day pass in Spain",
            "$36.50",
            "Spain? I wasn't in Spain in February.",
        ),
        (
            "the 14th",
            "a flower delivery charged through carrier billing",
            "$42.00",
            "Yes, Valentine's Day.",
        ),
        ("the 20th", "a ringtone subscription", "$2.99", "That's my son's, that's fine for now."),
        ("the 28th", "taxes and regulatory fees", "$9.12", None),
    ],
    "March": [
        ("the 3rd", "your monthly plan", "$55.00", None),
        ("the 3rd", "the device payment, installment 16 of 24", "$28.75", None),
        ("the 8th", "a late payment fee", "$15.00", "That one is fair, I paid late."),
        ("the 19th", "an international call to Canada, 31 minutes", "$9.30", "My sister again."),
        ("the 25th", "a data top-up of 2 gigabytes", "$10.00", None),
        ("the 31st", "taxes and regulatory fees", "$8.47", None),
    ],
}

TROUBLESHOOTING = [
    (
        "First, can you check that mobile data is switched on? Swipe down from the top of the "
        "screen and look for the mobile data tile.",
        "Okay, swiping down. Yes, mobile data is on, the tile is blue.",
    ),
    (
        "Good. Now please turn on airplane mode, wait about ten seconds, and turn it off again.",
        "Airplane mode on. Waiting. And off again. The signal bars are back.",
    ),
    (
        "Let's try sending a picture to your own number now. Open messages, start a new message "
        "to yourself, and attach any photo.",
        "Sending a photo of the dog to myself. It says sending. Still sending. Now it says "
        "failed, tap to retry.",
    ),
    (
        "Thank you. That tells me the settings for picture messages are probably wrong. Go to "
        "settings, then network and internet, then SIMs, then access point names.",
        "Settings, network and internet, SIMs. Okay, access point names. There's one called "
        "Internet.",
    ),
    (
        "Tap on it and scroll down to the field called MMSC. What does it say?",
        "It says nothing, it's empty.",
    ),
    (
        "That's the problem. It should be filled in automatically, but sometimes a software "
        "update clears it. Go back one screen, tap the three dots, and choose reset to default.",
        "Three dots, reset to default. It's asking if I'm sure. Yes. Okay, now there's a new "
        "entry called Swiftel.",
    ),
    (
        "Great. Now restart the phone, please. Hold the power button and choose restart. I'll "
        "wait.",
        "Restarting. It's taking a moment. Okay, it's back on.",
    ),
    (
        "Let's try the picture message to yourself again.",
        "Sending the dog photo again. Sent! And I received it. There's the dog.",
    ),
    (
        "Excellent, picture messages are working again. Can you also try sending one to your "
        "wife's number, to be sure it works to other people?",
        "Sending it to her now. Delivered. She just replied with a heart.",
    ),
]

OPENING = [
    (
        "agent",
        "Thank you for calling Swiftel Mobile, my name is Grace. Who do I have the pleasure "
        "of speaking with?",
    ),
    (
        "customer",
        "Hi Grace, this is Tom Fairweather. I've got a few things to go through today, "
        "I hope you have some time.",
    ),
    (
        "agent",
        "Of course, Tom, we'll take as long as you need. Can I have the mobile number on "
        "the account, please?",
    ),
    ("customer", "It's ### ### ####."),
    ("agent", "Thank you. And for security, can you tell me the four-digit PIN on the account?"),
    ("customer", "Yes, it's ####."),
    ("agent", "Perfect, you're verified. What can I help you with first?"),
    (
        "customer",
        "Well, first, my bills have been higher than I expected for a few months, and "
        "I'd like to go through them with you, line by line if that's okay. I just want to "
        "understand what I'm paying for.",
    ),
    (
        "agent",
        "Absolutely, that's a good idea. Let's start with January and work forward. I'll "
        "read each charge and you tell me if anything looks wrong.",
    ),
    ("customer", "Great, go ahead."),
]

PLAN_CHANGE = [
    (
        "customer",
        "Okay, that's the bills. The second thing: my two kids are getting their own "
        "phones, and I'd like to put everyone on one plan. What are my options?",
    ),
    (
        "agent",
        "Good timing, we have family plans that would likely save you money. There are "
        "three. Family 20 gives each line 20 gigabytes, Family 40 gives each line 40 gigabytes, "
        "and Family Unlimited has no data cap.",
    ),
    ("customer", "And what do they cost for three lines?"),
    (
        "agent",
        "For three lines, Family 20 is $75 a month, Family 40 is $95 a month, and Family "
        "Unlimited is $130 a month. That's for all three lines together, before taxes.",
    ),
    (
        "customer",
        "We're at $55 just for me right now, so Family 40 at $95 for all three sounds "
        "good. Do the kids get the same calls and texts?",
    ),
    (
        "agent",
        "Yes, every line has unlimited calls and texts within the country, and each line "
        "gets its own 40 gigabytes. You can also set parental controls and data limits for the "
        "kids' lines in the app.",
    ),
    ("customer", "Can I keep my current number?"),
    (
        "agent",
        "Yes, your number stays the same, and the two new lines get new numbers. You can "
        "pick them in the app once the SIM cards arrive.",
    ),
    ("customer", "When would the new plan start?"),
    (
        "agent",
        "Plan changes take effect at the start of your next billing cycle, which is May "
        "1st. I'll send two SIM cards for the new lines, and they should arrive within 3 business "
        "days. They'll activate on May 1st too.",
    ),
    ("customer", "Perfect. Let's do Family 40 then."),
    (
        "agent",
        "Done. You're on Family 40 from May 1st, with two new lines. Your order reference "
        "for the SIM cards is SW-77031.",
    ),
    ("customer", "SW-77031. Got it."),
    (
        "customer",
        "You mentioned parental controls. How do those work? My youngest is only "
        "eleven and I don't want her on her phone all night.",
    ),
    (
        "agent",
        "In the Swiftel app, under each line, there's a section called family controls. "
        "You can block content by age rating, set quiet hours when data is switched off, and "
        "get a weekly report of how much data each line used.",
    ),
    ("customer", "Quiet hours sounds great. Can I set different hours for each kid?"),
    (
        "agent",
        "Yes, each line has its own schedule. A lot of parents set quiet hours from 9 in "
        "the evening to 7 in the morning on school nights, and later on weekends.",
    ),
    (
        "customer",
        "And can she still call me during quiet hours? I'd want her to be able to reach us.",
    ),
    (
        "agent",
        "Yes, calls and texts to numbers on the family plan always go through, and "
        "emergency calls always work, whatever the settings.",
    ),
    ("customer", "Good. My son is fifteen, he'll complain about limits, but that's his problem."),
    (
        "agent",
        "Ha, I have a teenager too, I know that conversation well. You can also let him "
        "request extra time from his phone, and you approve it from yours.",
    ),
    ("customer", "Oh, that's clever. I'll set it up when the SIMs arrive."),
]

MMS_OPENING = [
    (
        "customer",
        "Third thing, and this one is driving me mad. For about two weeks I can't send "
        "or receive picture messages. Texts work fine, calls are fine, but photos just fail.",
    ),
    (
        "agent",
        "I'm sorry, that is frustrating. Let's fix it together. Do you have the phone with "
        "you now?",
    ),
    ("customer", "Yes, I'm calling from the landline, so I have the mobile right here."),
]

PAYMENT = [
    (
        "customer",
        "Brilliant, thank you. That's been bugging me for ages. Now, the last money "
        "thing. What's my current balance?",
    ),
    (
        "agent",
        "Let me pull that up. The billing system is a little slow today, do you mind "
        "holding for a minute while I check the remainder from February?",
    ),
    ("customer", "Sure, I'll hold."),
    (
        "agent",
        "Thank you for holding, Tom. Your current balance, after the roaming credit, is "
        "$212.40. That's the March bill plus a remainder from February.",
        45.0,
    ),
    ("customer", "That's a bit much for me to pay at once right now. Can I split it?"),
    (
        "agent",
        "Yes, I can set up a payment arrangement. I can split it into two equal payments "
        "of $106.20, the first on April 20th and the second on May 20th. There are no fees for "
        "the arrangement, and no late fees as long as both payments are made on time.",
    ),
    ("customer", "That works. Will they be taken from my card automatically?"),
    (
        "agent",
        "Yes, from the card on file, ending in ####, on those two dates. You'll get a text "
        "reminder two days before each one.",
    ),
    ("customer", "Perfect, please set that up."),
    ("agent", "All set. The payment arrangement number is PA-4410."),
]

TRAVEL = [
    (
        "customer",
        "And finally, we're going to Portugal in June, two weeks at the beach. Will my "
        "phone work there?",
    ),
    ("agent", "Oh, lovely! Portugal in June is beautiful. Where are you going?"),
    (
        "customer",
        "The Algarve. We went ten years ago, before the kids, and always wanted to go "
        "back. My wife wants to do the cliff walks, I just want to sit by the sea.",
    ),
    (
        "agent",
        "That sounds perfect. I went to Lagos a couple of years ago, and the food was "
        "amazing. Try the grilled sardines.",
    ),
    ("customer", "Ha, noted, sardines. So, the phone?"),
    (
        "agent",
        "Right, the phone. Without a travel pass, roaming in Portugal costs a lot, so I'd "
        "recommend our Europe travel pass. It's $10 per day per line, only on days you actually "
        "use the phone there, and you get your normal allowance.",
    ),
    ("customer", "Only on days we use it? So if I keep it in airplane mode, no charge?"),
    (
        "agent",
        "Exactly. The pass only charges on a day when the phone connects to a network "
        "abroad. I can add the pass to all three lines now, so it's ready when you travel.",
    ),
    ("customer", "Yes, please add it to all three."),
    ("agent", "Done. The Europe travel pass is on all three lines."),
]

CLOSING = [
    (
        "agent",
        "Let me recap everything, Tom. I've credited the $36.50 roaming charge from "
        "February. Your plan changes to Family 40 at $95 a month on May 1st, with two new lines, "
        "and the SIM cards will arrive within 3 business days, reference SW-77031. Picture "
        "messages are working again after we reset the access point settings. Your balance of "
        "$212.40 is split into two payments of $106.20 on April 20th and May 20th, arrangement "
        "PA-4410. And the Europe travel pass is on all three lines for your trip.",
    ),
    ("customer", "That's everything. You've been incredibly patient, Grace, thank you."),
    (
        "agent",
        "It was my pleasure. I'll also send you an email summary of today's changes this "
        "afternoon. Is there anything else?",
    ),
    ("customer", "No, I think that's it. I'm exhausted, but happy."),
    (
        "agent",
        "Ha, well earned. Enjoy Portugal, and don't forget the sardines. Have a great day, Tom.",
    ),
    ("customer", "You too, bye."),
]


def bill_review() -> list[tuple[str, ...]]:
    turns: list[tuple[str, ...]] = []
    for month, lines in BILLS.items():
        turns.append(("agent", f"Okay, {month}. There are {len(lines)} charges on this bill."))
        for date, what, amount, remark in lines:
            turns.append(("agent", f"On {date}, {what}, {amount}."))
            turns.append(("customer", remark or "Okay, that one's fine."))
            if "Spain" in (remark or ""):
                turns.extend(
                    [
                        (
                            "agent",
                            "Let me look at that. The pass was triggered on February "
                            "11th when the phone connected to a Spanish network. Were you near the "
                            "border, or on a ship, perhaps?",
                        ),
                        ("customer", "No, I was at home the whole month. I didn't go anywhere."),
                        (
                            "agent",
                            "Then it looks like a network error. We had a known issue "
                            "that month where some phones near the coast connected to a roaming "
                            "network by mistake. I'm crediting the $36.50 back to your account "
                            "now, and you'll see it on your next bill.",
                        ),
                        (
                            "customer",
                            "Thank you, that's exactly the kind of thing I was worried about.",
                        ),
                    ]
                )
        turns.append(
            (
                "customer",
                f"Okay, {month} makes sense now."
                if month != "February"
                else "February makes sense apart from that roaming charge.",
            )
        )
    return turns


def troubleshooting() -> list[tuple[str, ...]]:
    turns: list[tuple[str, ...]] = []
    for agent, customer in TROUBLESHOOTING:
        turns.append(("agent", agent))
        turns.append(("customer", customer))
    return turns


def build() -> dict:
    turns = [
        *OPENING,
        *bill_review(),
        *PLAN_CHANGE,
        *MMS_OPENING,
        *troubleshooting(),
        *PAYMENT,
        *TRAVEL,
        *CLOSING,
    ]
    return {
        "name": "long_billing_review",
        "description": "A 20-minute call: bill review with a wrong roaming charge, family "
        "plan change, picture-message troubleshooting, payment arrangement and a travel pass. "
        "Generated by build_long_call.py.",
        "instructions": None,
        # Long calls are spoken slower (reading bills, doing steps on the phone).
        "words_per_second": 2.0,
        "gap_s": 1.6,
        # A third element is a pause before the turn, in seconds (the hold).
        "turns": [list(t) for t in turns],
        "facts": [
            {"fact": "wrong roaming charge $36.50 credited", "any": ["36.50", "36.5", "roaming"]},
            {"fact": "change to Family 40 plan", "any": ["family 40", "family plan"]},
            {"fact": "Family 40 costs $95 a month", "any": ["95"]},
            {"fact": "new plan starts May 1st", "any": ["may 1", "may 1st", "1st of may"]},
            {"fact": "two new lines / SIM cards", "any": ["sim", "new lines", "two lines"]},
            {"fact": "picture messages fixed", "any": ["picture", "mms", "photo"]},
            {
                "fact": "payment arrangement in two payments of $106.20",
                "any": ["106.20", "106.2", "payment arrangement", "two payments"],
            },
            {"fact": "Europe travel pass $10 per day", "any": ["travel pass", "europe"]},
        ],
        "action_items": [
            {
                "owner": "agent",
                "text": "Credit the $36.50 roaming charge",
                "any": ["credit", "roaming"],
            },
            {
                "owner": "agent",
                "text": "Switch to Family 40 on May 1st with two new lines",
                "any": ["family", "plan"],
            },
            {"owner": "agent", "text": "Send two SIM cards within 3 business days", "any": ["sim"]},
            {
                "owner": "agent",
                "text": "Set up the payment arrangement PA-4410",
                "any": ["payment", "arrangement"],
            },
            {
                "owner": "customer",
                "text": "Pay $106.20 on April 20th and May 20th",
                "any": ["pay", "106"],
            },
            {
                "owner": "agent",
                "text": "Add the Europe travel pass to all three lines",
                "any": ["travel pass", "europe"],
            },
            {
                "owner": "agent",
                "text": "Email a summary of the changes this afternoon",
                "any": ["email", "summary"],
            },
        ],
        "small_talk": True,
    }


if __name__ == "__main__":
    data = build()
    words = sum(len(turn[1].split()) for turn in data["turns"])
    (HERE / "long_billing_review.json").write_text(json.dumps(data, indent=1) + "\n")
    print(f"{len(data['turns'])} turns, {words} words")
