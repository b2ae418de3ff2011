// A readable list of the API, built from /openapi.json in the page (Swagger UI would need a CDN).
"use strict";

function text(tag, content) {
  const node = document.createElement(tag);
  node.textContent = content;
  return node;
}

function formFields(operation) {
  const content = operation.requestBody && operation.requestBody.content;
  const schema = content && (content["multipart/form-data"] || content["application/x-www-form-urlencoded"]);
  return schema ? schema.schema.$ref.split("/").pop() : null;
}

async function render() {
  const spec = await (await fetch("/openapi.json")).json();
  const main = document.getElementById("endpoints");
  main.replaceChildren(text("p", spec.info.description || ""));
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      const section = document.createElement("section");
      section.className = "photo";
      section.append(text("h2", `${method.toUpperCase()} ${path}`), text("p", operation.summary || ""));
      const bodyName = formFields(operation);
      const fields = bodyName ? spec.components.schemas[bodyName].properties : {};
      const required = bodyName ? spec.components.schemas[bodyName].required || [] : [];
      const list = document.createElement("ul");
      for (const parameter of operation.parameters || []) list.append(text("li", `${parameter.name} (${parameter.in})`));
      for (const [name, field] of Object.entries(fields)) {
        const kind = field.type === "array" ? "files" : field.format === "binary" ? "file" : field.type || "value";
        const fallback = field.default === undefined ? "" : `, default ${field.default}`;
        list.append(text("li", `${name}: ${kind}${required.includes(name) ? ", required" : fallback}${field.description ? ` — ${field.description}` : ""}`));
      }
      if (list.children.length) section.append(list);
      main.append(section);
    }
  }
}

render().catch((error) => { document.getElementById("endpoints").textContent = `Cannot read /openapi.json: ${error.message}`; });
