// The chat service of the design: one whole completion, or a stream of chunks.
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace OpenAI.LocalAdapter
{
    public interface IChatService
    {
        Task<ChatCompletionResponse> CreateCompletionAsync(ChatCompletionRequest request, CancellationToken cancellationToken = default(CancellationToken));

        /// <summary>The completion with the reply it came in: status and headers (x-request-id, x-ratelimit-*).</summary>
        Task<ClientResult<ChatCompletionResponse>> CreateCompletionResultAsync(ChatCompletionRequest request, CancellationToken cancellationToken = default(CancellationToken));

        /// <summary>Chunks as the server sends them (SSE frames parsed as they arrive).</summary>
        IAsyncEnumerable<ChatCompletionResponse> CreateCompletionStreamAsync(ChatCompletionRequest request, CancellationToken cancellationToken = default(CancellationToken));
    }
}
