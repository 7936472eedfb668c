// The official openai npm client against `upg serve` with the demo model.
// scripts/test.sh builds upg and runs this with UPG_BIN set:
//   UPG_BIN=/path/to/upg node --test tests/node/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import OpenAI from 'openai';
import { zodResponseFormat } from 'openai/helpers/zod';
import { z } from 'zod';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = process.env.UPG_BIN || path.join(root, 'upg');
const model = path.join(root, 'models/miniphi-29m.upg');
const key = 'sk-node-test';

let server;
let stderr = '';
let client;

before(async () => {
  server = spawn(bin, ['serve', '--model', model, '--port', '0', '--api-key', key, '--max-batch', '8', '--kv-budget', '64MiB'],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  server.stderr.setEncoding('utf8');
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`upg serve did not start:\n${stderr}`)), 30000);
    server.stderr.on('data', (chunk) => {
      stderr += chunk;
      const m = stderr.match(/msg=listening url=(http:\/\/127\.0\.0\.1:\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    server.on('exit', (code) => reject(new Error(`upg serve exited with ${code}:\n${stderr}`)));
  });
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 });
});

after(async () => {
  if (!server || server.exitCode !== null) return;
  const exited = new Promise((resolve) => server.on('exit', (code, signal) => resolve({ code, signal })));
  server.kill('SIGTERM');
  const { code } = await exited;
  assert.equal(code, 0, `upg serve exit code after SIGTERM:\n${stderr}`);
});

const prompt = 'func (b *Buffer) Write(p []byte) (n int, err error) {';

test('greedy completion equals upg run --temperature 0', async () => {
  const want = execFileSync(bin, ['run', '--model', model, '--temperature', '0', '--max-tokens', '32', prompt],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const tokens = execFileSync(bin, ['tokenize', '--model', model, prompt], { encoding: 'utf8' }).trim().split(/\s+/);
  const res = await client.completions.create({ model: 'miniphi-29m', prompt, max_tokens: 32, temperature: 0 });
  assert.equal(res.choices[0].text, want);
  assert.equal(res.usage.prompt_tokens, tokens.length);
  assert.equal(res.usage.total_tokens, res.usage.prompt_tokens + res.usage.completion_tokens);
  assert.equal(res.object, 'text_completion');
});

test('streamed completion equals the non-streamed one, with usage', async () => {
  const params = { model: 'miniphi-29m', prompt, max_tokens: 24, temperature: 0 };
  const full = await client.completions.create(params);
  const stream = await client.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let usage;
  let finish;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, full.choices[0].text);
  assert.equal(finish, full.choices[0].finish_reason);
  assert.deepEqual(usage, full.usage);
});

test('chat, streaming and not, stop strings', async () => {
  const messages = [{ role: 'system', content: 'You write Go.' }, { role: 'user', content: 'Write a function that adds two numbers.' }];
  const res = await client.chat.completions.create({ model: 'miniphi-29m', messages, max_completion_tokens: 40, temperature: 0 });
  const want = res.choices[0].message.content;
  assert.equal(res.choices[0].message.role, 'assistant');
  assert.ok(res.usage.prompt_tokens > 0 && res.usage.completion_tokens > 0);

  const stream = await client.chat.completions.create({ model: 'miniphi-29m', messages, max_completion_tokens: 40, temperature: 0, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.equal(text, want);

  if (want.length > 12) {
    const stop = want.slice(6, 11);
    const cut = await client.chat.completions.create({ model: 'miniphi-29m', messages, max_completion_tokens: 40, temperature: 0, stop: [stop] });
    assert.equal(cut.choices[0].message.content, want.slice(0, want.indexOf(stop)));
    assert.equal(cut.choices[0].finish_reason, 'stop');
  }
});

test('n choices streamed by index; penalties and logit_bias as upg run has them', async () => {
  const params = { model: 'x', prompt, max_tokens: 16, temperature: 0 };
  const one = await client.completions.create(params);
  const stream = await client.completions.create({ ...params, n: 2, stream: true, stream_options: { include_usage: true } });
  const texts = ['', ''];
  const finish = [];
  let usage;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      texts[c.index] += c.text;
      if (c.finish_reason) finish[c.index] = c.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.deepEqual(texts, [one.choices[0].text, one.choices[0].text]);
  assert.deepEqual(finish, [one.choices[0].finish_reason, one.choices[0].finish_reason]);
  assert.equal(usage.completion_tokens, 2 * one.usage.completion_tokens);
  assert.equal(usage.prompt_tokens, one.usage.prompt_tokens);

  const flags = ['--temperature', '0', '--max-tokens', '16', '--frequency-penalty', '1.5', '--presence-penalty', '0.5'];
  const ones = 'x := []int{1, 1, 1, 1, 1, 1, 1, 1';
  const want = execFileSync(bin, ['run', '--model', model, ...flags, ones], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const pen = await client.completions.create({ ...params, prompt: ones, frequency_penalty: 1.5, presence_penalty: 0.5 });
  const plain = await client.completions.create({ ...params, prompt: ones });
  assert.equal(pen.choices[0].text, want);
  assert.notEqual(pen.choices[0].text, plain.choices[0].text);
  const x = execFileSync(bin, ['tokenize', '--model', model, ' x'], { encoding: 'utf8' }).trim().split(/\s+/);
  assert.equal(x.length, 1);
  const biased = await client.completions.create({ ...params, max_tokens: 5, logit_bias: { [x[0]]: 100 } });
  assert.equal(biased.choices[0].text, ' x'.repeat(5));
});

test('response_format json_object: the answer is JSON at every token, one object when it ends', async () => {
  const messages = [{ role: 'user', content: 'Write the user as JSON with a name and an age.' }];
  const res = await client.chat.completions.create({
    model: 'x', messages, max_tokens: 200, temperature: 0, frequency_penalty: 0.5, response_format: { type: 'json_object' },
  });
  const text = res.choices[0].message.content;
  assert.equal(res.choices[0].finish_reason, 'stop', text);
  assert.equal(typeof JSON.parse(text), 'object');
});

test('response_format json_schema: one value the schema accepts, properties in its order', async () => {
  const messages = [{ role: 'user', content: 'Write the user as JSON.' }];
  const schema = {
    type: 'object',
    properties: { name: { enum: ['Ada', 'Bob'] }, age: { type: 'integer' }, admin: { type: 'boolean' } },
    required: ['name', 'age', 'admin'],
    additionalProperties: false,
  };
  const res = await client.chat.completions.create({
    model: 'x', messages, max_tokens: 120, temperature: 0, frequency_penalty: 0.5,
    response_format: { type: 'json_schema', json_schema: { name: 'user', schema, strict: true } },
  });
  const text = res.choices[0].message.content;
  assert.equal(res.choices[0].finish_reason, 'stop', text);
  const u = JSON.parse(text);
  assert.deepEqual(Object.keys(u), ['name', 'age', 'admin'], text);
  assert.ok(['Ada', 'Bob'].includes(u.name) && Number.isInteger(u.age) && typeof u.admin === 'boolean', text);
  await assert.rejects(
    client.chat.completions.create({ model: 'x', messages, response_format: { type: 'json_schema', json_schema: { name: 'u' } } }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'response_format',
  );
  await assert.rejects(
    client.chat.completions.create({
      model: 'x', messages, response_format: { type: 'json_schema', json_schema: { name: 'u', schema: { type: 'string', not: { const: 'a' } } } },
    }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'response_format' && /"not"/.test(e.message),
  );
});

test('zodResponseFormat and chat.completions.parse: nested models, lengths, bounds, a pattern and formats, parsed by zod', async () => {
  // the SDK's zod helper writes the reused Address under definitions and refers to it by $ref
  const Address = z.object({ city: z.string().max(16), since: z.string().date() });
  const Person = z.object({
    name: z.string().max(12), age: z.number().int().min(0).max(120), code: z.string().regex(/^[A-Z]{3}-\d{2}$/),
    home: Address, work: Address.nullable(), id: z.string().uuid(),
  });
  const res = await client.chat.completions.parse({
    model: 'x', max_tokens: 300, temperature: 0,
    messages: [{ role: 'user', content: 'Ada lives in Oslo.' }],
    response_format: zodResponseFormat(Person, 'person'),
  });
  const msg = res.choices[0].message;
  assert.equal(res.choices[0].finish_reason, 'stop', msg.content);
  assert.ok(msg.parsed, msg.content); // zod's own check passed
  assert.deepEqual(Object.keys(JSON.parse(msg.content)), ['name', 'age', 'code', 'home', 'work', 'id'], msg.content);
});

test('tools: a required call of an offered tool, its arguments in its schema, streamed the same', async () => {
  const tools = [{
    type: 'function',
    function: {
      name: 'get_weather', description: 'The weather in a city now.',
      parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 20 }, unit: { enum: ['celsius', 'fahrenheit'] } },
        required: ['city', 'unit'], additionalProperties: false },
    },
  }];
  const params = { model: 'x', max_tokens: 120, temperature: 0, tools, tool_choice: 'required',
    messages: [{ role: 'user', content: 'What is the weather in Oslo?' }] };
  const res = await client.chat.completions.create(params);
  const ch = res.choices[0];
  assert.equal(ch.finish_reason, 'tool_calls');
  assert.equal(ch.message.content, null);
  const call = ch.message.tool_calls[0];
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  const args = JSON.parse(call.function.arguments);
  assert.deepEqual(Object.keys(args), ['city', 'unit']);
  assert.ok(['celsius', 'fahrenheit'].includes(args.unit) && args.city.length <= 20, call.function.arguments);
  const stream = client.chat.completions.stream({ ...params, stream: true });
  const done = await stream.finalChatCompletion();
  assert.equal(done.choices[0].message.tool_calls[0].function.arguments, call.function.arguments);
  // the call and its result in the history
  const next = await client.chat.completions.create({
    ...params, tool_choice: 'auto', max_tokens: 20,
    messages: [...params.messages, ch.message, { role: 'tool', tool_call_id: call.id, content: '7 degrees' }],
  });
  assert.ok(next.choices[0].message.content !== null || next.choices[0].message.tool_calls.length === 1);
});

test('errors: wrong key 401, n out of range and oversize prompts 400', async () => {
  const wrong = new OpenAI({ baseURL: client.baseURL, apiKey: 'sk-wrong', maxRetries: 0 });
  await assert.rejects(wrong.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  await assert.rejects(
    client.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'hi' }], n: 200 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'n',
  );
  await assert.rejects(
    client.completions.create({ model: 'x', prompt: 'word '.repeat(5000), max_tokens: 1 }),
    (e) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded' && /maximum context length/.test(e.message),
  );
  const models = await client.models.list();
  assert.equal(models.data[0].id, 'miniphi-29m');
});

test('concurrent streams all finish', async () => {
  const runs = Array.from({ length: 8 }, (_, i) => (async () => {
    const stream = await client.completions.create({ model: 'm', prompt: `Story ${i}:`, max_tokens: 16, stream: true, seed: i });
    let n = 0;
    let finish;
    for await (const chunk of stream) {
      n++;
      if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
    }
    return { n, finish };
  })());
  for (const r of await Promise.all(runs)) {
    assert.ok(r.n > 0);
    assert.ok(r.finish === 'length' || r.finish === 'stop');
  }
});
