// Speech marks (issue 26): the sentence being spoken is highlighted in the text while it plays.
// Inert until the deployment's /synthesize takes "marks" (its OpenAPI document says so): the page
// then asks for sentence marks, and a streamed response names its marks object (X-Marks-Uri).
// A mark is {type, start_s, end_s, start, end, value}: seconds in the audio, and code-point
// offsets in the text as sent.

// Whether this deployment's POST /synthesize takes "marks" (from its OpenAPI document).
export function marksSupported(openapi) {
  return Boolean(openapi?.components?.schemas?.SpeakRequest?.properties?.marks);
}

// Show `text` in `container`, one span per sentence mark, and highlight the sentence whose
// [start_s, end_s) holds `clock()` (seconds into the audio) until `clock()` returns null.
export function followMarks(container, text, marks, clock) {
  const characters = [...text];
  const sentences = marks.filter((mark) => mark.type === "sentence");
  container.replaceChildren(
    ...sentences.map((mark) => {
      const span = document.createElement("span");
      span.textContent = characters.slice(mark.start, mark.end).join("") + " ";
      return span;
    }),
  );
  const spans = [...container.children];
  const tick = () => {
    const now = clock();
    spans.forEach((span, i) => {
      const { start_s: start, end_s: end } = sentences[i];
      span.classList.toggle("spoken", now !== null && start <= now && now < end);
    });
    if (now !== null) requestAnimationFrame(tick);
  };
  tick();
}
