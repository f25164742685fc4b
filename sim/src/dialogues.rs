//! Scripted dialogues for the demo and the load tests.
//!
//! The simulated realtime peer plays one of these on a call: the user's
//! lines as the caller's speech and the agent's replies as the model's, so
//! the transcripts, live notes and summaries a newcomer sees read like the
//! voice sessions a product built on scribe would record. There are three,
//! each with a real arc (a greeting and a goal, substance with concrete
//! details, then a recap, a next step and a goodbye): a maths tutoring
//! session ([`TUTORING`]), a leadership coaching session ([`COACHING`]) and
//! Spanish practice for a traveller ([`LANGUAGE`]).
//!
//! A call lasts as long as its demo or load test wants, so [`exchange`]
//! cycles through a dialogue's exchanges. From the second round on, each
//! user line gets a short lead-in and each agent reply a short closer,
//! varied by round and exchange; once those run out the round is named, so
//! no line of a call repeats word for word.
//!
//! The lines are plain spoken text: no colons (transcripts are written as
//! `Speaker: text`), no double quotes, ASCII apart from Spanish accents.

/// One scripted conversation: what the user says, what the agent answers, in turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialogue {
    /// Short identifier: "tutoring", "coaching", "language".
    pub name: &'static str,
    /// The agent's name as it would introduce itself.
    pub agent: &'static str,
    /// The exchanges, in order: (user line, agent reply).
    pub exchanges: &'static [(&'static str, &'static str)],
}

/// A maths tutoring session with a high-school student before a test: adding,
/// multiplying and dividing fractions, then ratios, then word problems, where
/// the student makes a mistake and corrects it; homework and the next session
/// are agreed at the end.
#[rustfmt::skip]
pub const TUTORING: Dialogue = Dialogue {
    name: "tutoring",
    agent: "Maya",
    exchanges: &[
        ("Hi Maya, it's Sam. I've got a maths test on Friday and fractions are still kind of a \
          mess in my head.",
         "Hi Sam, good to hear from you. Friday gives us time. Let's spend today on fractions \
          first, then ratios, and finish with a word problem like the ones on your test. Does \
          that sound like a plan?"),
        ("Yeah, that works. Mostly it's adding fractions with different bottom numbers that trips \
          me up.",
         "The bottom number is called the denominator. You can only add fractions when the \
          denominators match, so the first job is always to find a common one. Let's try two \
          thirds plus one quarter. What number do both 3 and 4 go into?"),
        ("Um, 12? Because 3 times 4 is 12 and nothing smaller works for both of them.",
         "Exactly, 12 is the lowest common denominator. Now rewrite each fraction over 12. Two \
          thirds becomes how many twelfths, and one quarter becomes how many twelfths?"),
        ("Two thirds is eight twelfths, and one quarter is three twelfths. So the answer's eleven \
          twelfths?",
         "That's it. Eight twelfths plus three twelfths is eleven twelfths, and since 11 is prime \
          it can't be simplified. Notice you only add the top numbers, the numerators. The \
          denominator stays at 12."),
        ("Okay, that actually makes sense when you say it slowly. What about multiplying \
          fractions, is that harder?",
         "It's easier, honestly. For multiplying you don't need a common denominator at all. You \
          multiply the tops together and the bottoms together. Try three fifths times two \
          sevenths."),
        ("Three times two is six, five times seven is thirty-five, so it's six thirty-fifths.",
         "Perfect. Six thirty-fifths, and it doesn't simplify because 6 and 35 share no factors. \
          Now division, which is where people usually get stuck. Have you heard the phrase keep, \
          change, flip?"),
        ("I think our teacher said it once, but I don't remember what you actually flip.",
         "You keep the first fraction, change the division sign to multiplication, and flip the \
          second fraction upside down. So one half divided by three quarters becomes one half \
          times four thirds. What do you get?"),
        ("One times four is four, two times three is six, so four sixths. Can that go any \
          smaller?",
         "Good instinct to check. Both 4 and 6 divide by 2, so four sixths simplifies to two \
          thirds. Always look for a common factor at the end. It's an easy mark to lose on a \
          test."),
        ("Got it. Can we move on to ratios now? That's the part I'm most worried about.",
         "Sure. A ratio compares two amounts. If a class has 3 boys for every 5 girls, we say the \
          ratio of boys to girls is 3 to 5. It doesn't tell you how many students there are, just \
          how the groups compare."),
        ("So if there were 6 boys there'd be 10 girls? Because you just double both numbers?",
         "Yes, that's an equivalent ratio. Multiplying or dividing both parts by the same number \
          keeps the ratio the same. So 3 to 5, 6 to 10 and 9 to 15 all describe the same mix of \
          students."),
        ("That's kind of like equivalent fractions then, like how one half is the same as two \
          quarters.",
         "That's a really good connection, and it's exactly right. A ratio of 3 to 5 also tells \
          you the boys are three eighths of the class, because you add the parts to get the \
          total, and 3 plus 5 makes 8."),
        ("Wait, why eighths and not fifths? I would have said the boys were three fifths.",
         "Good question, it's a common trap. Three fifths compares boys to girls only. But the \
          whole class is boys plus girls, so the total is 8 parts. Boys are 3 of those 8 parts, \
          which is three eighths of everyone."),
        ("Oh, okay. So the ratio compares the parts, and the fraction compares a part to the \
          whole.",
         "You've just said it better than most textbooks do. Hold on to that sentence for Friday. \
          Now let's try a word problem that mixes both ideas, the kind that usually comes near \
          the end of the test."),
        ("Okay, I'm ready. Go ahead and read it out and I'll try to work through it.",
         "A pancake recipe uses 3 cups of flour for every 2 cups of milk. Jamie wants to use 12 \
          cups of flour for a big breakfast. How many cups of milk does Jamie need? Take it one \
          step at a time."),
        ("So 3 went up to 12, that's plus 9, so the milk goes up by 9 too. That's 11 cups of \
          milk.",
         "Let's pause there. You added 9 to both, but ratios grow by multiplying, not by adding. \
          Ask yourself what you multiply 3 by to get 12, and then do the same thing to the milk."),
        ("Oh, right. 3 times 4 is 12, so it's 2 times 4 for the milk, which is 8 cups. Not 11.",
         "Exactly, 8 cups of milk. And spotting the mistake yourself is what makes it stick. A \
          quick check is to see whether 12 to 8 simplifies back to 3 to 2. Does it?"),
        ("Yeah, if you divide both by 4 you get 3 and 2 again. So that checks out.",
         "Great, that's the habit I want you to take into the test. Let's do one more. A class of \
          28 students has boys to girls in the ratio 3 to 4. How many boys are there?"),
        ("Okay, so the parts add up to 7, and 28 divided by 7 is 4, so each part is 4 students.",
         "Lovely, you went straight to the total this time. Now use that. If one part is 4 \
          students, how many boys are there, and how many girls?"),
        ("Boys are 3 parts, so 12 boys, and girls are 4 parts, so 16 girls. And 12 plus 16 is 28.",
         "Perfect, and you checked that they add up to 28 without me asking. That's exactly what \
          a full-marks answer looks like. Twelve boys and sixteen girls, with the working shown."),
        ("That one felt way easier than the pancakes. Is there a trick for knowing which method \
          to use?",
         "Here's a rule of thumb. If the problem gives you one part, like 12 cups of flour, scale \
          it by multiplying. If it gives you the total, like 28 students, add the parts first and \
          divide the total by them."),
        ("So one part means scale it up, and the total means add the parts first. I can remember \
          that.",
         "That's it. Let's do a quick recap before we finish. We covered adding fractions with a \
          common denominator, multiplying straight across, dividing with keep, change, flip, and \
          then ratios as parts compared to parts."),
        ("And the thing about ratios growing by multiplying, not by adding. That's the one I \
          messed up.",
         "Yes, and you fixed it on your own, which matters more than getting it right the first \
          time. For homework I'd like you to do the odd-numbered problems from 1 to 15 on page 84 \
          of your textbook."),
        ("Only the odd ones? That's eight problems. Should I show all the working or just the \
          answers?",
         "Show all the working, please. Your teacher gives marks for method, and it helps me see \
          where you get stuck. If one takes more than ten minutes, circle it and we'll go through \
          it together."),
        ("Okay, fair enough. Can we meet again on Thursday, so I can ask about anything before \
          the test?",
         "Thursday works. Let's do half past four, same as today. Bring the homework and we'll do \
          a short practice quiz under test conditions, about fifteen minutes, so Friday feels \
          familiar."),
        ("Sounds good. Honestly, I feel a lot better about this than I did an hour ago.",
         "You should, you did really well today. You caught your own mistake, you linked ratios \
          to fractions, and you checked your answers. That's exactly what gets results on a \
          test."),
        ("Thanks Maya. See you Thursday, and I'll try not to leave the homework until Wednesday \
          night.",
         "Ha, I'll hold you to that. Good luck with the homework, Sam, and I'll see you on \
          Thursday at half past four. Bye for now."),
    ],
};

/// A leadership coaching session with a newly promoted team lead: preparing a
/// difficult conversation with a former peer who is missing deadlines, then
/// her overloaded week, ending with three goals and an action plan for the week.
#[rustfmt::skip]
pub const COACHING: Dialogue = Dialogue {
    name: "coaching",
    agent: "Jordan",
    exchanges: &[
        ("Hi Jordan, it's Priya. Thanks for making time. It's been a rough couple of weeks since \
          I took over the team.",
         "Hi Priya, glad you called. Congratulations again on the promotion, even if it doesn't \
          feel like a celebration right now. What would make this hour really useful for you?"),
        ("I need to figure out how to handle a conversation with Marcus. He keeps missing \
          deadlines and I've been avoiding it.",
         "That's a good thing to bring. Before we get to the conversation itself, tell me a bit \
          about the situation. How long have you worked with Marcus, and what's changed since you \
          became his lead?"),
        ("We were peers for three years. Now I'm his manager, and it feels awkward telling a \
          friend his work is slipping.",
         "That's one of the hardest transitions in management, going from peer to lead. The \
          friendship is real, and so is your new responsibility. Neither one cancels the other. \
          What exactly has been slipping?"),
        ("His code reviews sit for four or five days, and he's missed two sprint deadlines in a \
          row on the billing migration.",
         "Those are concrete, which is helpful. Reviews waiting four or five days and two missed \
          sprint deadlines. What impact has that had on the rest of the team so far?"),
        ("Two of the junior engineers are blocked waiting on his reviews, and our product manager \
          has started asking me pointed questions.",
         "So there's a ripple effect, on the juniors and on your credibility with product. It \
          sounds like avoiding it is already costing something. What's held you back from raising \
          it with him?"),
        ("Honestly, I'm scared he'll think the promotion went to my head, or that he'll get \
          defensive and it'll blow up.",
         "That fear makes sense, and naming it helps. Can I offer a structure that takes some of \
          the heat out? It's called situation, behaviour, impact, and it keeps the conversation \
          about facts rather than character."),
        ("Yes please. I've heard of it in a workshop but never actually used it in a real \
          conversation.",
         "You describe a specific situation, then the behaviour you observed, then the impact it \
          had. For example, in the last two sprints the billing tickets weren't finished by the \
          deadline, and that left Ana and Theo blocked for several days."),
        ("That sounds much less like an accusation than what I'd planned, which was basically \
          asking him what's going on with him.",
         "Asking what's going on has its place, but it comes after the facts, not instead of \
          them. Once you've shared the impact, ask an open question and then genuinely listen. \
          Something like, what's getting in the way?"),
        ("What if he says he's just overloaded? He's also the only person who really knows the \
          old billing system.",
         "Then you've learned something important, and it might partly be a team problem rather \
          than a Marcus problem. If he's the single point of knowledge on billing, that's a risk \
          you'd want to fix anyway. How would you respond?"),
        ("I guess I'd ask what he could hand off, and maybe pair one of the juniors with him on \
          the billing code.",
         "That's a strong move. It unblocks him, spreads the knowledge and gives a junior \
          engineer a chance to grow. Notice you went from blame to problem solving in one step. \
          That's the shift you want in the room."),
        ("But what if it isn't workload? What if he just doesn't care as much since he didn't get \
          the lead role?",
         "It's possible, and it's worth being ready for. Let me check one thing first. Did Marcus \
          actually apply for the lead role too, or is that an assumption you've been carrying \
          around?"),
        ("He did apply. We never talked about it afterwards. I just sort of pretended it hadn't \
          happened.",
         "That's very human. But an unspoken thing like that tends to sit under every \
          conversation. You don't need to open with it, but you might acknowledge it gently if it \
          comes up. How would it feel to say that out loud?"),
        ("Nervous, but relieved, I think. Maybe something like, I know this change has been weird \
          for both of us.",
         "That's honest and warm without being over the top, and it signals you value the \
          relationship. Then you can say you still need the reviews and deadlines to work, and \
          that you want to figure out together how to make that happen."),
        ("Okay. Should I do this in our regular one-on-one, or book a separate meeting so it \
          feels more serious?",
         "Use your regular one-on-one if it's soon. A surprise meeting can make someone feel \
          they're in trouble before you've said a word. When is your next one with him?"),
        ("Wednesday at two. That gives me a couple of days to prepare, which I definitely need.",
         "Good. Let's make your preparation concrete. Write down the situation, behaviour and \
          impact in two or three sentences, your open question, and one or two options you're \
          willing to offer, like pairing on billing."),
        ("I can do that tonight. Should I also think about what happens if things don't improve \
          after the talk?",
         "Yes, but keep it in your back pocket. The first conversation is about understanding and \
          agreeing next steps. If nothing changes in two or three weeks, you get clearer about \
          expectations and consequences, and you loop in your own manager."),
        ("That feels more manageable. Can we also talk about the bigger picture? I feel like I'm \
          drowning in meetings.",
         "Absolutely. Give me a rough picture of your week. How much of your time goes to \
          meetings, and how much is left for the work only you can do as the lead?"),
        ("I'd say around 25 hours a week in meetings, and I'm still trying to write code in the \
          evenings to keep up.",
         "Twenty-five hours plus evening coding isn't sustainable, and it's a common trap for new \
          leads. You're doing your old job and your new job at once. Which meetings truly need \
          you, and which could someone else attend?"),
        ("Probably the architecture sync and the incident review could go to Theo. He's senior \
          enough and he'd actually enjoy them.",
         "That's delegation that doubles as development for Theo. Two meetings off your plate \
          could free up three or four hours a week. What would you do with that time?"),
        ("I'd actually like to use it for proper one-on-ones. Right now I keep cancelling them \
          when things get busy.",
         "That's a great use of it. One-on-ones are where issues like the one with Marcus get \
          caught early. Protecting them also sends your team a clear message that they come \
          first."),
        ("Okay. So if I put it all together, what should my goals be for this week?",
         "Let's set three. First, have the conversation with Marcus on Wednesday using the \
          structure we practised. Second, hand the architecture sync and the incident review to \
          Theo. Third, stop coding in the evenings for one week and see what happens."),
        ("The third one scares me a little. What if something slips because I'm not picking it up \
          at night?",
         "Then you'll have real information about where the team needs support, instead of hiding \
          the gap with your own overtime. Treat it as an experiment, not a promise. You can \
          always adjust next week."),
        ("Fair. I'll try it. Can I send you a short note after Wednesday to say how it went with \
          Marcus?",
         "Please do. Tell me what you said, what he said, and what you agreed. We'll use it as \
          the starting point for our next session, and adjust the approach based on how he \
          responded."),
        ("Let me recap so I'm sure. Prepare the talk tonight, meet Marcus on Wednesday, hand off \
          two meetings, and no evening coding.",
         "That's exactly it. And remember that feeling awkward doesn't mean you're doing it \
          wrong. It usually means you're doing something new that matters. You're clearly taking \
          this seriously, and your team is lucky for it."),
        ("Thanks, that really helps. I came in feeling stuck and now I've actually got a plan.",
         "You did most of the thinking yourself today, I mostly asked questions. Trust that \
          instinct on Wednesday. Shall we book the next session for the same time in two weeks?"),
        ("Yes, the same time in two weeks works for me. Thanks so much, Jordan, talk soon.",
         "Great, I'll send the invite. Good luck with Marcus on Wednesday, Priya, you've got \
          this. Talk soon, and take care of yourself this week."),
    ],
};

/// Spanish practice for a traveller a week before a trip to Seville: ordering
/// food in a tapas bar and asking for directions, with the tutor correcting
/// gently; homework and a rehearsal session are agreed at the end.
#[rustfmt::skip]
pub const LANGUAGE: Dialogue = Dialogue {
    name: "language",
    agent: "Lucía",
    exchanges: &[
        ("Hola Lucía, I'm Tom. I fly to Seville next Tuesday and I want to practise some basic \
          Spanish before I go.",
         "¡Hola Tom! Encantada. Seville is a wonderful choice. Let's practise the two things \
          travellers need most, ordering food and asking for directions. I'll play the waiter or \
          a local, and I'll correct you gently as we go. ¿Vale?"),
        ("Vale, sounds good. I took Spanish at school but that was about fifteen years ago, so be \
          patient with me.",
         "No te preocupes, that means don't worry. It comes back faster than you think. Let's \
          start in a tapas bar, and I'm the waiter. Buenas tardes, ¿qué le pongo?"),
        ("Um, buenas tardes. Yo quiero una cerveza y... the potato omelette thing, la tortilla.",
         "Very good, you were understood perfectly. One small tip. Yo quiero sounds a bit blunt \
          in Spain. Locals usually say me pone una cerveza, or quisiera una cerveza, which is \
          more polite. Want to try it again?"),
        ("Me pone una cerveza y una tortilla, por favor. Is that better than what I said before?",
         "¡Perfecto! That sounds very natural. And tortilla in Spain is the potato omelette, so \
          you got that right too. Now I'll ask a follow-up as the waiter. ¿La cerveza, grande o \
          pequeña?"),
        ("Pequeña, por favor. And can I ask if they have something without meat? My girlfriend is \
          vegetarian.",
         "Sure. You can say ¿tiene algo sin carne? That means do you have something without meat. \
          Or more specifically, mi novia es vegetariana, ¿qué me recomienda? Can you try the \
          second one?"),
        ("Mi novia es vegetariana, ¿qué me... recomienda? I always forget how that verb ends.",
         "You got it, recomienda. It comes from recomendar, and the e changes to ie, like in many \
          common verbs. As the waiter I'd say, pues, las espinacas con garbanzos están muy \
          buenas. Do you know that dish?"),
        ("Garbanzos are chickpeas, I think? And espinacas... is that spinach? So it's spinach \
          with chickpeas?",
         "Exactly, spinach with chickpeas. It's a classic in Seville and it happens to be \
          vegetarian, so you'll see it on a lot of menus there. Now let's say you want some water \
          too. How would you ask?"),
        ("Y una agua, por favor. Sin gas. Or is it con gas? I want the normal one.",
         "Nearly there. Agua is feminine, but because it starts with a stressed a sound, we say \
          un agua, not una agua. So it's un agua sin gas, por favor. Sin gas is still water, con \
          gas is sparkling."),
        ("Un agua sin gas. That's strange, a feminine word with a masculine article. Are there \
          others like that?",
         "A few. El águila for eagle and el hacha for axe work the same way. But you'll mostly \
          need agua, so don't worry about the rest. Now, the end of the meal. How would you ask \
          for the bill?"),
        ("La cuenta, por favor. I remember that one from school, it was basically the only thing \
          we learned.",
         "Ha, it's the most useful phrase there is. You can also catch the waiter's eye and say \
          ¿me cobra cuando pueda? It means charge me when you can. It's very polite and very \
          Spanish."),
        ("¿Me cobra cuando pueda? I like that one. Do people usually tip in Spain, and how much?",
         "Tipping is modest there. Many people just round up or leave a euro or two on a small \
          bill. In a nicer restaurant, around five to ten percent is generous. Nobody will expect \
          big tips."),
        ("Good to know. Okay, can we practise directions now? I always get lost in old city \
          centres.",
         "Of course. Imagine you're in the old town looking for the cathedral. Stop someone \
          politely. Start with perdone, which means excuse me, and then ask where it is."),
        ("Perdone, ¿dónde es la catedral? I think that's right, but it feels a bit off somehow.",
         "Your instinct is good. For location we use estar, not ser. So it's ¿dónde está la \
          catedral? Ser is for what something is, estar is for where it is. Try the whole \
          sentence again."),
        ("Perdone, ¿dónde está la catedral? Okay, so estar for places. I'll try to remember that.",
         "Muy bien. Now I'll answer as a local. Siga todo recto, y en la segunda calle gire a la \
          izquierda. La catedral está al final de la calle. What did you catch?"),
        ("Go straight on, then at the second street turn left, and the cathedral is at the end of \
          the street?",
         "¡Exacto! Todo recto is straight ahead, izquierda is left and derecha is right. Those \
          three will get you almost anywhere. A good trick is that izquierda has a q, like the q \
          on the left side of a keyboard."),
        ("Oh, that's a handy trick. But what if I don't understand what they say? People talk \
          really fast.",
         "A very common worry. Say más despacio, por favor, which means more slowly please. Or \
          ¿puede repetir? for can you repeat that. People in Seville are friendly and usually \
          happy to slow down for you."),
        ("Más despacio, por favor. ¿Puede repetir? Okay. And what about asking how far away \
          something is?",
         "You'd ask ¿está lejos? for is it far, or ¿está cerca? for is it close. If you want to \
          know the time it takes, say ¿cuánto se tarda andando? That's how long does it take on \
          foot."),
        ("Let me try a full one. Perdone, ¿la estación de tren está lejos? ¿Cuánto se tarda \
          andando?",
         "Lovely, that was very natural. As a local I'd say, está bastante lejos, unos treinta \
          minutos andando. Mejor coja un taxi o el autobús. Did you follow that?"),
        ("It's quite far, about thirty minutes walking, so it's better to take a taxi or the bus?",
         "Perfect understanding. One note for your trip. In Spain coger means to take, like coger \
          un taxi, and it's completely normal. In parts of Latin America it's rude, so keep that \
          in mind if you travel further."),
        ("Ha, good warning. Can you give me a harder one? Like I'm lost and need to find my \
          hotel.",
         "Sure. You're lost, and your hotel is the Hotel Giralda. Tell me you're lost and ask for \
          help finding it. Take your time and build it piece by piece."),
        ("Perdone, estoy perdido. Busco el Hotel Giralda. ¿Me puede ayudar? Is perdido right for \
          a man?",
         "Yes, perdido is right for you, and a woman would say perdida. The whole thing was \
          excellent, clear and polite. As the local I'd say, claro, está muy cerca, a la derecha \
          después de la plaza."),
        ("Claro means of course, muy cerca is very close, then it's on the right after the \
          square. I understood all that!",
         "You did, and that's real progress since the start of this call. Let's do a quick recap. \
          For ordering, me pone or quisiera, un agua sin gas, and la cuenta. For directions, \
          dónde está, todo recto, izquierda and derecha."),
        ("And estar for places, and más despacio when people talk too fast. I'm writing all of \
          this down.",
         "Good idea. Here's your homework before Tuesday. Practise ordering a full meal out loud \
          three times, drink, food and the bill, and listen to a Spanish podcast for ten minutes \
          a day to tune your ear."),
        ("Can we have one more session on Monday, the day before I fly, just to warm up?",
         "Claro que sí, Monday works well. We'll do a full role play, arriving at the hotel, \
          dinner and getting around, with no English from me at all. It'll feel like a dress \
          rehearsal."),
        ("No English at all? That's terrifying, but probably good for me. Okay, I'm in.",
         "You'll be fine, you're already more confident than when we started. And remember, \
          people appreciate the effort. Even with a few mistakes, speaking Spanish in Seville \
          will make your trip so much warmer."),
        ("Muchas gracias, Lucía. Hasta el lunes, and thanks for being so patient with me.",
         "De nada, Tom, ha sido un placer. Hasta el lunes, and keep practising those directions. \
          ¡Buen viaje, and see you on Monday!"),
    ],
};

/// Every dialogue, in the order [`for_label`] picks from.
pub const ALL: [&Dialogue; 3] = [&TUTORING, &COACHING, &LANGUAGE];

/// How many rounds after the first get a varied lead-in and closer before
/// the round is named as well.
const VARIED_ROUNDS: usize = 12;

/// What the user says before a line heard in an earlier round. None starts
/// with "Round", which the named rounds do.
const LEAD_INS: [&str; VARIED_ROUNDS] = [
    "Okay, next one.",
    "Let me try another.",
    "Going back to that.",
    "One more on this.",
    "Right, let's keep going.",
    "Let me say that again.",
    "Sorry, picking up from before.",
    "Alright, once more.",
    "Okay, so.",
    "Let me go over this again.",
    "Hang on, back to this one.",
    "Bear with me.",
];

/// What the agent adds after a reply heard in an earlier round.
const CLOSERS: [&str; VARIED_ROUNDS] = [
    "Does that make sense?",
    "Good.",
    "Take your time.",
    "Nice work.",
    "Keep going.",
    "Alright.",
    "That's the idea.",
    "You're doing well.",
    "Sounds good.",
    "Let's keep at it.",
    "Right.",
    "Okay.",
];

/// The dialogue a call plays, chosen from the call's label (e.g. a meeting
/// id) so a demo with several calls shows all of them: the sum of the
/// label's bytes modulo [`ALL`]`.len()`, stable across runs.
pub fn for_label(label: &str) -> &'static Dialogue {
    let sum = label
        .bytes()
        .fold(0_usize, |sum, byte| sum.wrapping_add(usize::from(byte)));
    ALL[sum % ALL.len()]
}

/// The `n`th exchange (0-based) of a call playing `dialogue` for as long as
/// it takes: (user line, agent reply).
///
/// Past the last exchange it starts again from the first. From the second
/// round on the user line gets a lead-in and the agent reply a closer,
/// chosen by round and exchange so that an exchange's lines differ in each
/// of the first twelve repeats; after that the round is named too.
/// No line of a call repeats word for word.
///
/// # Panics
///
/// If `dialogue` has no exchanges.
pub fn exchange(dialogue: &Dialogue, n: usize) -> (String, String) {
    let len = dialogue.exchanges.len();
    let (round, index) = (n / len, n % len);
    let (user, agent) = dialogue.exchanges[index];
    if round == 0 {
        return (user.to_owned(), agent.to_owned());
    }
    let lead_in = LEAD_INS[(round - 1 + index) % VARIED_ROUNDS];
    let closer = CLOSERS[(round - 1 + index * 5) % VARIED_ROUNDS];
    if round <= VARIED_ROUNDS {
        (format!("{lead_in} {user}"), format!("{agent} {closer}"))
    } else {
        let named = round + 1;
        (
            format!("Round {named}. {lead_in} {user}"),
            format!("{agent} {closer} That's round {named} done."),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn lines(dialogue: &Dialogue) -> impl Iterator<Item = &'static str> {
        dialogue
            .exchanges
            .iter()
            .flat_map(|&(user, agent)| [user, agent])
    }

    #[test]
    fn every_dialogue_has_24_to_30_exchanges() {
        for dialogue in ALL {
            let len = dialogue.exchanges.len();
            assert!((24..=30).contains(&len), "{}: {len}", dialogue.name);
        }
    }

    #[test]
    fn no_line_has_a_colon_space_or_a_double_quote() {
        for dialogue in ALL {
            for line in lines(dialogue) {
                assert!(!line.contains(": "), "{line}");
                assert!(!line.contains('"'), "{line}");
            }
        }
    }

    #[test]
    fn lines_are_plain_spoken_text_of_spoken_length() {
        for dialogue in ALL {
            for &(user, agent) in dialogue.exchanges {
                let words = user.split_whitespace().count();
                assert!((8..=30).contains(&words), "{words} words: {user}");
                let words = agent.split_whitespace().count();
                assert!((20..=60).contains(&words), "{words} words: {agent}");
            }
            for line in lines(dialogue) {
                assert!(!line.contains(':'), "{line}");
                let allowed = |c: char| {
                    c.is_ascii() || (dialogue.name == "language" && "áéíóúüñ¿¡".contains(c))
                };
                assert!(line.chars().all(allowed), "{line}");
            }
        }
    }

    #[test]
    fn names_are_distinct() {
        let names: HashSet<_> = ALL.iter().map(|dialogue| dialogue.name).collect();
        assert_eq!(names.len(), ALL.len());
    }

    #[test]
    fn a_long_call_never_repeats_a_user_line() {
        for dialogue in ALL {
            let calls = dialogue.exchanges.len() * 10;
            let users: HashSet<_> = (0..calls).map(|n| exchange(dialogue, n).0).collect();
            assert_eq!(users.len(), calls, "{}", dialogue.name);
        }
    }

    #[test]
    fn lines_never_repeat_past_the_varied_rounds_either() {
        for dialogue in ALL {
            let calls = dialogue.exchanges.len() * (VARIED_ROUNDS + 5);
            let (mut users, mut agents) = (HashSet::new(), HashSet::new());
            for n in 0..calls {
                let (user, agent) = exchange(dialogue, n);
                assert!(
                    !user.contains(": ") && !agent.contains(": "),
                    "{user} / {agent}"
                );
                assert!(users.insert(user), "{}: exchange {n}", dialogue.name);
                assert!(agents.insert(agent), "{}: exchange {n}", dialogue.name);
            }
        }
    }

    #[test]
    fn the_first_round_plays_the_script_as_written() {
        for dialogue in ALL {
            for (n, &(user, agent)) in dialogue.exchanges.iter().enumerate() {
                assert_eq!(exchange(dialogue, n), (user.to_owned(), agent.to_owned()));
            }
        }
    }

    #[test]
    fn for_label_reaches_every_dialogue() {
        let picked: Vec<&Dialogue> = ('a'..='z').map(|c| for_label(&c.to_string())).collect();
        for dialogue in ALL {
            assert!(picked.contains(&dialogue), "{}", dialogue.name);
        }
        assert_eq!(for_label("meeting-42"), for_label("meeting-42"));
    }
}
