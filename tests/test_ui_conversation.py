"""Conversation prompts in the TUI, on the real embedded model: turns built by keys, the system
prompt's default shown, what is rendered and what a generation is sent."""

from __future__ import annotations

import pytest
from textual.widgets import ListView, Tabs, TextArea

from playground.prompt_builder import (PromptSpec, Turn, chat_template_of, render,
                                       template_default_system)
from playground.ui.app import make_app
from playground.ui.screens.turn_editor import TurnEditor
from playground.ui.widgets.prompt_panel import PromptPanel
from playground.ui.widgets.turns_editor import TurnsEditor
from tests.test_ui_app import GREEDY, settings, wait_done
from tests.ui_harness import Harness, one_thread_engine, until

CHAT = PromptSpec(mode="conversation", template="chat")


@pytest.fixture(scope="module")
def engine():
    """The model on one thread, beside the UI thread (see one_thread_engine)."""
    yield from one_thread_engine()


async def add_turn(pilot, key: str, text: str) -> None:
    """Press ``key`` (u / a) in the turns list, type ``text`` in the editor, save it."""
    await pilot.press(key)
    await until(pilot, lambda: isinstance(pilot.app.screen, TurnEditor), "the turn editor")
    await pilot.press(*text)
    await pilot.press("ctrl+s")
    await until(pilot, lambda: not isinstance(pilot.app.screen, TurnEditor), "the editor to close")
    await pilot.pause()


def panel_spec(app) -> PromptSpec:
    return app.screen.current_spec()


async def test_conversation_built_by_keys_renders_and_generates_as_the_reference(engine):
    app = make_app(settings(engine, prompt=CHAT))
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.screen
        await until(pilot, lambda: app.chat_template is not None, "the model")
        assert isinstance(app.focused, ListView) and app.focused.id == "turn-list"  # focus_prompt
        await add_turn(pilot, "u", "Name a colour.")
        await add_turn(pilot, "a", "Red.")
        await add_turn(pilot, "u", "Another one?")
        assert panel_spec(app).turns == (Turn("user", "Name a colour."), Turn("assistant", "Red."),
                                         Turn("user", "Another one?"))
        # the newest turn is highlighted: move it up, then back down
        await pilot.press("shift+up")
        assert [t.content for t in panel_spec(app).turns] == ["Name a colour.", "Another one?", "Red."]
        await pilot.press("shift+down")
        assert [t.content for t in panel_spec(app).turns] == ["Name a colour.", "Red.", "Another one?"]
        # flip the role of the last turn and back; delete the first turn
        await pilot.press("r")
        assert panel_spec(app).turns[-1] == Turn("assistant", "Another one?")
        await pilot.press("r", "up", "up", "d")
        assert panel_spec(app).turns == (Turn("assistant", "Red."), Turn("user", "Another one?"))
        # edit the first (highlighted) turn: enter opens it with its text and role
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TurnEditor), "the turn editor")
        assert app.screen.query_one("#turn-content", TextArea).text == "Red."
        await pilot.press("end", *" Or blue.", "ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, TurnEditor), "the editor to close")
        assert panel_spec(app).turns[0] == Turn("assistant", "Red. Or blue.")
        # the rows show each turn's role and text
        rows = [" ".join(str(label.render()) for label in item.query("Label"))
                for item in screen.query_one("#turn-list", ListView).children]
        assert rows == ["1. assistant Red. Or blue.", "2. user Another one?"]
        # the system prompt, reached by shift+tab from the list
        await pilot.press("shift+tab")
        assert app.focused.id == "system"
        await pilot.press(*"Be brief.")
        spec = panel_spec(app)
        assert (spec.mode, spec.system, spec.template) == ("conversation", "Be brief.", "chat")
        reference = render(spec, chat_template_of(engine))
        assert screen.rendered().text == reference.text
        assert reference.text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")
        assert reference.text.endswith("<|im_start|>user\nAnother one?<|im_end|>\n<|im_start|>assistant\n")
        # the token count under the pane is that of the rendering
        n = len(engine.model.tokenize(reference.text, add_special=reference.add_special))
        await until(pilot, lambda: str(screen.query_one("#prompt-count").render()).startswith(f"{n} / "),
                    "the token count")
        await pilot.press("ctrl+g")
        await wait_done(pilot, screen)
        assert screen.record.request.prompt == reference.text
        assert screen.record.request.messages == reference.messages
        assert screen.record.tokens


async def test_the_reply_goes_on_as_an_assistant_turn(engine):
    app = make_app(settings(engine, prompt=CHAT.replace(turns=(Turn("user", "Say hello."),))))
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.screen
        await until(pilot, lambda: app.chat_template is not None, "the model")
        await pilot.press("ctrl+g")
        await wait_done(pilot, screen)
        reply = screen.record.text
        assert reply.strip()
        await pilot.press("ctrl+y")  # the screen's key: reply -> assistant turn
        await pilot.pause()
        assert panel_spec(app).turns == (Turn("user", "Say hello."), Turn("assistant", reply))
        assert not screen.query_one(PromptPanel).append_reply("  \n")  # nothing to append
        await pilot.pause()
        assert len(panel_spec(app).turns) == 2
        await add_turn(pilot, "u", "Again.")
        spec = panel_spec(app)
        assert screen.rendered().text == render(spec, chat_template_of(engine)).text
        assert f"<|im_start|>assistant\n{reply}<|im_end|>\n<|im_start|>user\nAgain.<|im_end|>" in screen.rendered().text


async def test_append_reply_turns_a_free_form_prompt_into_a_conversation(engine):
    app = make_app(settings(engine, prompt=PromptSpec(mode="freeform", text="Hi there", template="chat")))
    async with app.run_test(size=(160, 48)) as pilot:
        panel = app.screen.query_one(PromptPanel)
        assert panel.append_reply("Hello!")
        await pilot.pause()
        spec = panel_spec(app)
        assert spec.mode == "conversation"
        assert spec.turns == (Turn("user", "Hi there"), Turn("assistant", "Hello!"))
        assert app.screen.query_one("#prompt-mode").active == "conversation"


async def test_empty_system_prompt_shows_the_templates_default(engine):
    default = template_default_system(chat_template_of(engine))
    assert default and "SmolLM" in default  # the embedded model's template writes one
    app = make_app(settings(engine, prompt=CHAT.replace(turns=(Turn("user", "Hi"),))))
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.screen
        await until(pilot, lambda: app.chat_template is not None, "the model")
        system = screen.query_one("#system", TextArea)
        await until(pilot, lambda: "SmolLM" in system.placeholder, "the default in the placeholder")
        shown = "".join(system.render_line(y).text for y in range(system.size.height))
        assert "template default:" in shown and "SmolLM" in shown
        assert "template default" in str(system.border_subtitle)
        # and the rendering does use it
        assert f"system\n{default}<|im_end|>" in screen.rendered().text
        # plain mode: an empty system prompt adds no line, and the hint says so
        await pilot.press("ctrl+t")
        await until(pilot, lambda: "no system line" in system.placeholder, "the plain-mode hint")
        assert not system.border_subtitle
        assert screen.rendered().text == "User: Hi\n\nAssistant:"
        # a typed system prompt replaces the default; the subtitle goes
        await pilot.press("ctrl+t")
        system.focus()
        await pilot.press(*"Be terse.")
        await until(pilot, lambda: not system.border_subtitle, "the subtitle to go")
        assert "SmolLM" not in screen.rendered().text and "system\nBe terse.<|im_end|>" in screen.rendered().text


async def test_examples_are_rendered_in_conversation_mode_and_the_pane_says_so(engine):
    from playground.prompt_builder import Example

    spec = CHAT.replace(turns=(Turn("user", "cat"),), examples=(Example("dog", "chien"),))
    app = make_app(settings(engine, prompt=spec))
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.screen
        await until(pilot, lambda: app.chat_template is not None, "the model")
        await pilot.pause(0.3)
        text = screen.rendered().text
        assert "user\ndog<|im_end|>\n<|im_start|>assistant\nchien<|im_end|>\n<|im_start|>user\ncat" in text
        assert "unused" not in str(screen.query_one("#examples").border_title)


async def test_keyboard_reaches_the_conversation_tab_and_round_trips_a_spec(engine):
    app = make_app(settings(engine, prompt=PromptSpec(mode="structured", input="x")))
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.screen
        for _ in range(6):  # from the input field back to the mode tabs
            if isinstance(app.focused, Tabs):
                break
            await pilot.press("shift+tab")
        assert isinstance(app.focused, Tabs)
        await pilot.press("right", "right")
        await pilot.pause()
        assert screen.query_one(PromptPanel).mode == "conversation"
        await pilot.press("tab")
        assert app.focused.id == "system"
        # a session's prompt opens into the pane (set_spec) and comes back the same
        opened = PromptSpec(mode="conversation", system="S.", template="chat",
                            turns=(Turn("user", "a"), Turn("assistant", "b"), Turn("user", "c")))
        screen.query_one(PromptPanel).set_spec(opened)
        await pilot.pause()
        await pilot.pause()
        assert screen.query_one(PromptPanel).spec(PromptSpec()) == opened
        assert len(screen.query_one("#turn-list", ListView).children) == 3


async def test_80x24_turns_and_system_prompt_are_reachable_and_visible(engine):
    turns = (Turn("user", "What is the capital of France? Answer in one word please."), Turn("assistant", "Paris."))
    app = make_app(settings(engine, prompt=CHAT.replace(turns=turns)))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        lst = screen.query_one("#turn-list", ListView)
        await until(pilot, lambda: len(lst.children) == 2, "the turn rows")
        visible = screen.query_one("#left").region  # the editing column, above the footer

        def shown(widget) -> bool:
            region = widget.region
            return region.height > 0 and visible.contains_region(region)

        assert app.focused is lst
        system = screen.query_one("#system", TextArea)
        assert shown(system) and system.region.height >= 3
        assert all(shown(item) for item in lst.children) and len(lst.children) == 2
        await add_turn(pilot, "u", "And Spain?")
        await pilot.pause()
        assert len(lst.children) == 3 and shown(lst.children[-1])
        assert lst.children[-1].region.width >= 40
        # the editor fits too
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, TurnEditor), "the turn editor")
        editor = app.screen
        for selector in ("#turn-content", "#turn-role", "#save"):
            region = editor.query_one(selector).region
            assert region.height > 0 and editor.region.contains_region(region), selector
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, "the editor to close")
        await pilot.press("shift+tab")
        assert app.focused is system and shown(system)
        await pilot.press(*"Hi.")
        assert panel_spec(app).system == "Hi."


async def test_turns_editor_alone_posts_changes_and_refuses_an_empty_turn():
    editor = TurnsEditor((Turn("user", "one"),))
    app = Harness(editor)
    async with app.run_test(size=(80, 20)) as pilot:
        editor.query_one(ListView).focus()
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, TurnEditor), "the turn editor")
        await pilot.press("ctrl+s")  # empty: refused, the editor stays
        await pilot.pause()
        assert isinstance(app.screen, TurnEditor)
        assert "empty" in str(app.screen.query_one("#turn-error").render())
        # the role can be changed in the editor: shift+tab to the role, pick "user"
        await pilot.press(*"two", "shift+tab")
        assert app.focused.id == "turn-role"
        await pilot.press("enter", "up", "enter")
        assert str(app.screen.query_one("#turn-title").render()) == "New user turn"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, TurnEditor), "the editor to close")
        await pilot.pause()
        assert editor.turns == [Turn("user", "one"), Turn("user", "two")]
        changes = app.of(TurnsEditor.Changed)
        assert changes and changes[-1].turns == (Turn("user", "one"), Turn("user", "two"))
        await pilot.press("d", "d")
        await pilot.pause()
        assert editor.turns == []
        assert editor.query_one("#turns-empty").display
