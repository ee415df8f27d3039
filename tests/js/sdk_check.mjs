// The official OpenAI JS SDK against a running TTS Studio: prints one JSON report on stdout.
// Usage: node sdk_check.mjs <base_url>
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "sk-local", maxRetries: 0 });
const report = {};

const models = await client.models.list();
report.models = models.data.map((m) => m.id);

for (const format of ["mp3", "opus", "aac", "flac", "wav", "pcm"]) {
  const response = await client.audio.speech.create({
    model: "tts-1", voice: "alloy", input: "Hello from the JavaScript SDK.", response_format: format,
  });
  const bytes = Buffer.from(await response.arrayBuffer());
  report[format] = { status: response.status, type: response.headers.get("content-type"), bytes: bytes.length,
                     head: bytes.subarray(0, 4).toString("hex") };
}

const sse = await client.audio.speech.create({
  model: "gpt-4o-mini-tts", voice: "nova", input: "Hi.", stream_format: "sse",
});
const text = await sse.text();
report.sse = text.split("\n\n").filter(Boolean).map((frame) => JSON.parse(frame.slice(6)).type);

for (const [name, body] of [
  ["bad_speed", { model: "tts-1", voice: "alloy", input: "Hi.", speed: 9 }],
  ["bad_model", { model: "tts-9", voice: "alloy", input: "Hi." }],
  ["empty_input", { model: "tts-1", voice: "alloy", input: "" }],
]) {
  try {
    await client.audio.speech.create(body);
    report[name] = "no error";
  } catch (err) {
    report[name] = { status: err.status, code: err.code, param: err.param, type: err.type,
                     className: err.constructor.name, message: err.message };
  }
}
console.log(JSON.stringify(report));
