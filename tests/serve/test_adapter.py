"""An adapter folder (no config.json) is served as it is: merged over the base it names."""
import openai
import torch

from serve.conftest import ThreadServer

QUESTION = [{"role": "user", "content": "Is Paris the capital?"}]


def test_an_adapter_folder_is_served(chat_model_path, tmp_path):
    from lmforge.models.load import load_causal_lm, load_tokenizer
    from lmforge.models.peft import PeftSection, apply_peft, save_adapter
    from lmforge.serve.engine import ChatEngine
    from lmforge.serve.openai_server import create_app

    tok = load_tokenizer(str(chat_model_path))
    torch.manual_seed(0)  # before apply_peft too: peft draws A from the global RNG (else the answer depends on which tests ran first)
    model = apply_peft(load_causal_lm(str(chat_model_path)), PeftSection(method="lora", r=2, alpha=4))
    with torch.no_grad():  # a trained adapter's B is not zero: give it weights that change the answers
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    adapter = save_adapter(model, None, tmp_path / "adapter", str(chat_model_path))  # no tokenizer: the base's
    assert not (adapter / "config.json").exists()
    ids = tok.apply_chat_template(QUESTION, add_generation_prompt=True, return_dict=False)
    with torch.no_grad(), model.disable_adapter():
        base = model(input_ids=torch.tensor([ids])).logits[0, -1].log_softmax(-1)
    with torch.no_grad():
        want = model.merge_and_unload()(input_ids=torch.tensor([ids])).logits[0, -1].log_softmax(-1)

    engine = ChatEngine.load(str(adapter), device="cpu")
    assert engine.name == "adapter"
    try:
        with ThreadServer(create_app(engine)) as live, \
                openai.OpenAI(base_url=live.url + "/v1", api_key="x", max_retries=0, timeout=60) as c:
            r = c.chat.completions.create(model="adapter", messages=QUESTION, temperature=0, max_tokens=1,
                                          logprobs=True, top_logprobs=5)
    finally:
        engine.close()
    first = r.choices[0].logprobs.content[0]
    assert tok.decode([int(want.argmax())]) == first.token  # the merged adapter's greedy token, not the base's
    assert abs(first.logprob - float(want.max())) < 1e-4
    # the five most likely tokens' log-probs are the merged model's, and the base alone would not give them (one
    # token's log-prob can happen to move little under a random adapter; five together do not)
    served = sorted((t.logprob for t in first.top_logprobs), reverse=True)
    assert max(abs(a - float(b)) for a, b in zip(served, want.topk(5).values)) < 1e-4
    assert max(abs(a - float(b)) for a, b in zip(served, base.topk(5).values)) > 1e-2
