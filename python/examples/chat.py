#!/usr/bin/env python3
"""A chat loop with the model's own chat template; Ctrl-C stops the current answer, Ctrl-D quits.

    python3 chat.py [MODEL]

(The demo model is a 29M-parameter toy: it continues text in the style it was trained on.)
"""

import sys

import upg

with upg.Model(sys.argv[1] if len(sys.argv) > 1 else None) as model:
    print(f"chat template {model.chat_template}; Ctrl-C stops an answer, Ctrl-D quits", file=sys.stderr)
    history = [{"role": "system", "content": "You are a helpful assistant."}]
    while True:
        try:
            line = input("> ")
        except EOFError:
            print()
            break
        history.append({"role": "user", "content": line})
        answer = []
        try:
            for piece in model.chat_stream(history, max_tokens=256):
                answer.append(piece)
                print(piece, end="", flush=True)
        except KeyboardInterrupt:
            print(" [stopped]", end="")
        print()
        history.append({"role": "assistant", "content": "".join(answer).strip()})
