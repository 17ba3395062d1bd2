// The API reference page: the vendored Swagger UI renders /api/openapi.json.

import { renderHeader, showError } from './common.js';

renderHeader();
try {
  // eslint-disable-next-line no-undef
  SwaggerUIBundle({
    url: '/api/openapi.json',
    dom_id: '#reference',
    deepLinking: true,
    docExpansion: 'list',
    defaultModelsExpandDepth: 0,
    validatorUrl: null,
  });
} catch (e) {
  showError(`The reference could not be rendered: ${e.message || e}`);
}
